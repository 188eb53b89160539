"""A look at the augmentations: the first training batch, de-normalized, as a labelled image grid.

``lightning-cnn preview --config CONFIG [--config FRAGMENT ...] --out grid.png`` writes the grid of a config to a PNG
without training anything; during ``fit`` the ``AugmentationPreview`` callback (``lightning_cnn.training.preview``)
logs the same grid to every logger.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import yaml
from PIL import Image

from lightning_cnn.config_files import find_config
from lightning_cnn.data import ImageDataModule
from lightning_cnn.errors import ConfigError, LightningCnnError, check_file
from lightning_cnn.tools.options import ToolParser
from lightning_cnn.training.preview import batch_grid


def preview_datamodule(configs: list[dict], overrides: list[str]) -> ImageDataModule:
    """The data module of the configs' ``data`` sections, applied in order as ``fit`` applies its ``--config`` files
    (a fragment adds to or changes what came before), then the ``--data.*`` flags."""
    from jsonargparse import ArgumentParser

    sections = [config["data"] for config in configs if "data" in config]
    if not sections:
        raise ConfigError("no config given has a 'data' section to preview")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(ImageDataModule, "data")
    try:
        namespace = parser.parse_args([*(a for data in sections for a in ("--data", json.dumps(data))), *overrides])
    except Exception as err:
        raise ConfigError(f"cannot read the data section: {' '.join(str(err).split())[:300]}") from err
    return parser.instantiate(namespace).data


def write_preview(
    config_paths: list[Path], out: Path, num_images: int = 32, overrides: list[str] | None = None
) -> Path:
    """Write the grid of the first augmented training batch of the configs (under their ``seed_everything``) to
    ``out``."""
    configs = [yaml.safe_load(path.read_text()) or {} for path in config_paths]
    for path, config in zip(config_paths, configs, strict=True):
        if not isinstance(config, dict):
            raise ConfigError(
                f"config file {path} is not a mapping of keys to values; see 'lightning-cnn recipes' for examples"
            )
    datamodule = preview_datamodule(configs, overrides or [])
    seeds = [config["seed_everything"] for config in configs if isinstance(config.get("seed_everything"), int)]
    L.seed_everything(seeds[-1] if seeds else 0, verbose=False)
    datamodule.prepare_data()
    datamodule.setup("fit")
    images, labels = datamodule.prepare_batch(next(iter(datamodule.train_dataloader())), train=True)
    grid = batch_grid(datamodule, images, labels, num_images)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(out)
    return out


def main(argv: list[str] | None = None) -> None:
    """``lightning-cnn preview --config CONFIG [--config ...] --out PNG [--num_images N] [--data.KEY VALUE ...]``."""
    parser = ToolParser(prog="lightning-cnn preview", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, action="append", required=True,
        help="a recipe or a run's saved config.yaml; several apply in order, as for fit (a recipe, then fragments)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("augmentations.png"), help="PNG file to write")
    parser.add_argument("--num_images", type=int, default=32, help="images in the grid")
    args, overrides = parser.parse_known_args(argv)
    try:
        args.config = [Path(find_config(str(path))) for path in args.config]
        for path in args.config:
            check_file(path, "config file")
        if args.num_images < 1:
            raise ConfigError(f"--num_images must be 1 or more, got {args.num_images}")
        path = write_preview(args.config, args.out, args.num_images, overrides)
    except LightningCnnError as err:
        sys.stderr.write(f"error: {' '.join(str(err).split())}\n")
        sys.exit(1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
