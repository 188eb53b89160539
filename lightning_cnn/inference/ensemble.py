"""``python -m lightning_cnn ensemble``: several trained runs, alone and with their softmax outputs averaged, on the
test split of the data module they were trained on.

Each member sees the test images through its own recorded preprocessing; the members must agree on the classes
and the input shape. The table goes to stdout, the figures to ``ensemble.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from lightning_cnn.checkpoints import class_of
from lightning_cnn.data import ImageDataModule
from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.trained import TrainedModel, load_trained

# data module settings that only matter for training
TRAINING_ONLY = ("augment", "_instantiator", "_class_path")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The options, and the ``--data.KEY VALUE`` overrides (values read as YAML: ``64``, ``true``, ``[1, 2]``)."""
    parser = argparse.ArgumentParser(
        prog="lightning-cnn ensemble",
        description="Test several trained runs and the average of their softmax outputs on the test split of the "
        "data module they were trained on (from the first checkpoint, changed by --config and --data.KEY VALUE).",
        epilog="example: lightning-cnn ensemble --ckpt_path lightning_logs/version_{0,1,2} --data.data_dir data",
    )
    parser.add_argument(
        "--ckpt_path", nargs="+", required=True, help="checkpoint files or run folders (lightning_logs/version_N)"
    )
    parser.add_argument("--config", help="a config (e.g. a run's config.yaml) whose data section picks the test data")
    parser.add_argument("--output", default="ensemble.json", help="where the figures go (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=512, help="images per forward pass (default: 512)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda when available)")
    args, rest = parser.parse_known_args(list(argv))
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(rest):
        key, _, value = rest[i].partition("=")
        if not key.startswith("--data.") or len(key) == len("--data."):
            parser.error(f"unrecognized argument {rest[i]}; data options are given as --data.KEY VALUE")
        if not value:
            if i + 1 >= len(rest):
                parser.error(f"{key} needs a value")
            value, i = rest[i + 1], i + 1
        overrides[key.removeprefix("--data.")] = yaml.safe_load(value)
        i += 1
    if args.batch_size < 1:
        parser.error(f"--batch_size must be at least 1, got {args.batch_size}")
    return args, overrides


def data_settings(first: TrainedModel, config: str | None, overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The data module's class path and arguments: the first member's, then the config's data section, then
    ``--data.*``; options that only matter for training (augmentations) are dropped."""
    class_path = first.datamodule_hparams.get("_class_path")
    init_args = {k: v for k, v in first.datamodule_hparams.items() if k not in TRAINING_ONLY}
    if config:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"config file not found: {config}")
        data = (yaml.safe_load(path.read_text()) or {}).get("data")
        if isinstance(data, dict):
            if data.get("class_path") and data["class_path"] != class_path:
                class_path, init_args = data["class_path"], {}
            init_args.update(data.get("init_args") or {})
    init_args.update(overrides)
    for key in TRAINING_ONLY:
        init_args.pop(key, None)
    if not class_path:
        raise ConfigError(f"{first.checkpoint_path} does not record its data module; give --config with a data section")
    return class_path, init_args


def test_split(class_path: str, init_args: dict[str, Any], path: Path) -> tuple[Tensor, Tensor]:
    """The uint8 test images and labels of the data module ``class_path(**init_args)``."""
    cls = class_of(class_path, ImageDataModule, "data module", path)
    try:
        datamodule = cls(**init_args)
    except TypeError as err:
        raise ConfigError(f"data: {class_path.rsplit('.', 1)[-1]} does not take these options ({err})") from err
    datamodule.prepare_data()
    datamodule.setup("test")
    assert datamodule.test_set is not None
    return datamodule.test_set.images, datamodule.test_set.labels


def check_members(members: Sequence[TrainedModel]) -> None:
    """Members must classify the same images into the same classes for their outputs to be averaged."""
    first = members[0]
    for member in members[1:]:
        for what in ("classes", "input_shape"):
            mine, theirs = getattr(first.preprocessing, what), getattr(member.preprocessing, what)
            if mine != theirs:
                raise ConfigError(
                    f"ensemble members differ in {what}: {first.checkpoint_path} has {list(mine)},"
                    f" {member.checkpoint_path} has {list(theirs)}; ensemble runs trained on the same data"
                )


def evaluate(members: Sequence[TrainedModel], images: Tensor, labels: Tensor, batch_size: int) -> dict[str, Any]:
    """Each member's test accuracy, their mean, and the accuracy of the averaged softmax outputs."""
    total = torch.zeros(len(labels), len(members[0].preprocessing.classes))
    rows = []
    for member in members:
        probabilities = member.probabilities(images, batch_size)
        total += probabilities
        accuracy = (probabilities.argmax(1) == labels).float().mean().item()
        rows.append(
            {"ckpt_path": str(member.checkpoint_path), "model": type(member.model).__name__, "test_acc": accuracy}
        )
    ensemble = (total / len(members)).argmax(1)
    mean = sum(row["test_acc"] for row in rows) / len(rows)
    return {
        "members": rows,
        "member_mean_test_acc": mean,
        "ensemble_test_acc": (ensemble == labels).float().mean().item(),
        "num_images": len(labels),
    }


def table(result: dict[str, Any]) -> str:
    """The figures as an aligned text table."""
    lines = [("member", "model", "test/acc")]
    lines += [(row["ckpt_path"], row["model"], f"{row['test_acc']:.4f}") for row in result["members"]]
    lines += [("mean of members", "", f"{result['member_mean_test_acc']:.4f}")]
    lines += [(f"ensemble (softmax average of {len(result['members'])})", "", f"{result['ensemble_test_acc']:.4f}")]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in lines)


def main(argv: Sequence[str]) -> None:
    args, overrides = parse_args(argv)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    members = [load_trained(path, device) for path in args.ckpt_path]
    check_members(members)
    class_path, init_args = data_settings(members[0], args.config, overrides)
    images, labels = test_split(class_path, init_args, members[0].checkpoint_path)
    if tuple(images.shape[1:]) != members[0].preprocessing.input_shape:
        raise ConfigError(
            f"the test images of {class_path} are {tuple(images.shape[1:])}, the members take"
            f" {members[0].preprocessing.input_shape}; give the data settings the runs were trained with"
        )
    result = evaluate(members, images, labels, args.batch_size)
    result["data"] = {"class_path": class_path, "init_args": init_args}
    print(table(result))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    sys.stderr.write(f"wrote {output}\n")
