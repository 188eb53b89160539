"""A look at the augmentations: the first training batch, de-normalized, as a labelled image grid.

During ``fit`` the ``AugmentationPreview`` callback logs the grid to every logger (``train/first_batch``);
``lightning-cnn preview --config CONFIG [--config FRAGMENT ...] --out grid.png`` writes the same kind of grid for
a config without training anything.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from lightning_cnn.config_files import find_config
from lightning_cnn.data import ImageDataModule
from lightning_cnn.errors import ConfigError, LightningCnnError, check_file
from lightning_cnn.tool_options import ToolParser
from lightning_cnn.training.loggers import log_image

CAPTION = 12  # pixels of caption under each tile
MIN_TILE = 64  # small images are enlarged (nearest neighbour) to at least this many pixels


def image_grid(
    images: Tensor,
    labels: Tensor | None = None,
    classes: tuple[str, ...] | None = None,
    predictions: Tensor | None = None,
) -> Tensor:
    """Images (N, C, H, W) in [0, 1] as one uint8 RGB grid (3, H', W'), each tile captioned with its class.

    Tiles are enlarged by a whole factor to at least ``MIN_TILE`` pixels so 28×28 or 32×32 images stay
    readable next to their captions. With ``predictions`` a second caption line gives the predicted class;
    a mistake gets it in red, a red frame and a red cross in the tile's corner.
    """
    images = images.detach().float().clamp(0, 1).cpu()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    n, _, h, w = images.shape
    factor = max(1, math.ceil(MIN_TILE / min(h, w)))
    caption = CAPTION * (2 if predictions is not None else 1)
    tile_h, tile_w = h * factor + caption, w * factor
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = Image.new("RGB", (cols * (tile_w + 2), rows * (tile_h + 2)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    tiles = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    chars = max(1, tile_w // 6)

    def name(label: int) -> str:
        return (classes[label] if classes and label < len(classes) else str(label))[:chars]

    for i, tile in enumerate(tiles):
        x, y = (i % cols) * (tile_w + 2) + 1, (i // cols) * (tile_h + 2) + 1
        bottom = y + h * factor
        grid.paste(Image.fromarray(tile).resize((tile_w, h * factor), Image.Resampling.NEAREST), (x, y))
        if labels is not None:
            draw.text((x + 1, bottom), name(int(labels[i])), fill="black", font=font)
        if predictions is not None:
            predicted = int(predictions[i])
            wrong = labels is not None and predicted != int(labels[i])
            draw.text((x + 1, bottom + CAPTION), name(predicted), fill="red" if wrong else "green", font=font)
            if wrong:
                draw.rectangle((x, y, x + tile_w - 1, bottom - 1), outline="red", width=2)
                size = max(6, tile_w // 6)
                right = x + tile_w - 4
                draw.line((right - size, y + 3, right, y + 3 + size), fill="red", width=2)
                draw.line((right - size, y + 3 + size, right, y + 3), fill="red", width=2)
    return torch.from_numpy(np.asarray(grid).copy()).permute(2, 0, 1)


def batch_grid(datamodule: ImageDataModule, images: Tensor, labels: Tensor, num_images: int) -> Tensor:
    """The grid of a normalized batch: de-normalized with the data module's statistics, labelled with its classes
    (a mixed batch's soft targets by their dominant class)."""
    shown = datamodule.denormalize(images[:num_images].float())
    labels = labels.argmax(dim=1) if labels.ndim == 2 else labels
    return image_grid(shown, labels[:num_images], getattr(datamodule, "classes", None))


class AugmentationPreview(L.Callback):
    """Log the first training batch of a run, augmented and de-normalized, to every logger as a labelled grid.

    Args:
        num_images: images shown; 0 turns the preview off.
    """

    def __init__(self, num_images: int = 32) -> None:
        if num_images < 0:
            raise ConfigError(f"preview.num_images must be 0 or more, got {num_images}")
        self.num_images = num_images

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.num_images == 0 or batch_idx != 0 or trainer.global_step != 0 or not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        if not trainer.loggers or trainer.fast_dev_run or not isinstance(datamodule, ImageDataModule):
            return
        images, labels = batch
        grid = batch_grid(datamodule, images, labels, self.num_images)
        log_image(trainer, "train/first_batch", grid.permute(1, 2, 0).numpy(), trainer.global_step)


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
