"""``python -m lightning_cnn calibrate RUN``: temperature scaling of a trained run, fit on its validation split.

The run's logits on the validation split of the data module it was trained with (its recorded settings, as
``ensemble`` rebuilds them) are divided by the one temperature T > 0 that minimizes their negative log-likelihood
(``lightning_cnn.inference.calibration``). T goes to ``RUN/calibration.json`` with the validation ECE and NLL before
and after, and ``predict-files`` then reports calibrated probabilities. Predictions themselves never change.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.calibration import CALIBRATION_FILE, ece, fit_temperature, nll, run_folder_of
from lightning_cnn.inference.trained import load_trained
from lightning_cnn.tools.ensemble import data_settings, load_splits
from lightning_cnn.tools.options import ToolParser, add_device_option, add_trust_option, resolve_device


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = ToolParser(
        prog="lightning-cnn calibrate",
        description="Fit one temperature T that divides a trained run's logits (temperature scaling) on the run's"
        " validation split; write it to RUN/calibration.json, which predict-files then uses.",
        epilog="example: lightning-cnn calibrate lightning_logs/version_0",
    )
    parser.add_argument("run", metavar="RUN", help="a run folder (lightning_logs/version_N) or one of its checkpoints")
    parser.add_argument("--batch_size", type=int, default=512, help="images per forward pass (default: 512)")
    add_device_option(parser)
    add_trust_option(parser)
    args = parser.parse_args(list(argv))
    if args.batch_size < 1:
        parser.error(f"--batch_size must be at least 1, got {args.batch_size}")
    return args


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    trained = load_trained(args.run, resolve_device(args.device), trust=args.trust_checkpoint)
    class_path, init_args = data_settings(trained, None, {})
    (images, labels), _ = load_splits(class_path, init_args, trained.checkpoint_path)
    if len(labels) == 0:
        raise ConfigError(f"{args.run}: the validation split is empty (data.val_size: 0); nothing to calibrate on")
    if tuple(images.shape[1:]) != trained.preprocessing.input_shape:
        raise ConfigError(
            f"the validation images of {class_path} are {tuple(images.shape[1:])}, the run takes"
            f" {trained.preprocessing.input_shape}"
        )
    logits = trained.logits(images, args.batch_size)
    temperature = fit_temperature(logits, labels)
    folder = run_folder_of(trained.checkpoint_path)
    record = {
        "temperature": temperature,
        "val_ece_before": ece(logits, labels),
        "val_ece_after": ece(logits, labels, temperature),
        "val_nll_before": nll(logits, labels),
        "val_nll_after": nll(logits, labels, temperature),
        "val_images": len(labels),
        "checkpoint": str(trained.checkpoint_path.relative_to(folder)),
    }
    output = folder / CALIBRATION_FILE
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"temperature {temperature:.4f}, fit on {len(labels)} validation images of {trained.checkpoint_path}")
    print(f"val ECE {record['val_ece_before']:.4f} -> {record['val_ece_after']:.4f}")
    print(f"val NLL {record['val_nll_before']:.4f} -> {record['val_nll_after']:.4f}")
    sys.stderr.write(f"wrote {output}\n")
