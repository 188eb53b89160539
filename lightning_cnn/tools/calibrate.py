"""``python -m lightning_cnn calibrate RUN``: temperature scaling of a trained run, fit on its validation split.

The run's logits on the validation split of the data module it was trained with (its recorded settings, as
``ensemble`` rebuilds them) are divided by the one temperature T > 0 that minimizes their negative log-likelihood
(``lightning_cnn.inference.calibration``). T goes to ``RUN/calibration.json`` with the validation ECE and NLL before
and after, and the test split's ECE, MCE, NLL and accuracy before and after (the test split only measures: T is fit
on the validation split alone), drawn as ``RUN/reliability_calibrated.png``, the report's reliability diagram
before and after. ``predict-files``, ``ensemble`` and ``export`` then use T. Predictions themselves never change.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.calibration import (
    CALIBRATION_FILE,
    calibration_figures,
    ece,
    fit_temperature,
    nll,
    reliability_bins,
    run_folder_of,
)
from lightning_cnn.inference.trained import load_trained
from lightning_cnn.tools.ensemble import data_settings, load_splits
from lightning_cnn.tools.options import ToolParser, add_device_option, add_trust_option, resolve_device
from lightning_cnn.training.loggers import save_png
from lightning_cnn.training.report import reliability_figure

RELIABILITY_CALIBRATED_FILE = "reliability_calibrated.png"


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
    if getattr(trained.model, "multi_label", False):
        raise ConfigError(f"calibrate: {args.run} is a multi-label run; temperature scaling calibrates a softmax")
    class_path, init_args = data_settings(trained, None, {})
    (images, labels), (test_images, test_labels) = load_splits(class_path, init_args, trained.checkpoint_path)
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
    test_logits = trained.logits(test_images, args.batch_size) if len(test_labels) else None
    if test_logits is not None:
        record.update(test_record(test_logits, test_labels, temperature))
    output = folder / CALIBRATION_FILE
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"temperature {temperature:.4f}, fit on {len(labels)} validation images of {trained.checkpoint_path}")
    print(f"val ECE {record['val_ece_before']:.4f} -> {record['val_ece_after']:.4f}")
    print(f"val NLL {record['val_nll_before']:.4f} -> {record['val_nll_after']:.4f}")
    if test_logits is None:
        print("test: the test split is empty; nothing to measure the temperature on")
    else:
        for key in ("ece", "mce", "nll"):
            print(f"test {key.upper()} {record[f'test_{key}_before']:.4f} -> {record[f'test_{key}_after']:.4f}")
        print(f"test accuracy {record['test_acc_after']:.4f} (unchanged) on {len(test_labels)} test images")
        figure = folder / RELIABILITY_CALIBRATED_FILE
        save_before_after(test_logits, test_labels, temperature, figure)
        sys.stderr.write(f"wrote {figure}\n")
    sys.stderr.write(f"wrote {output}\n")


def test_record(logits: Tensor, labels: Tensor, temperature: float) -> dict[str, float]:
    """The test split's ECE, MCE, NLL and accuracy without and with the temperature: ``test_ece_before``, ..."""
    before, after = calibration_figures(logits, labels), calibration_figures(logits, labels, temperature)
    record: dict[str, float] = {"test_images": len(labels)}
    for key in ("ece", "mce", "nll", "acc"):
        record[f"test_{key}_before"], record[f"test_{key}_after"] = before[key], after[key]
    return record


def save_before_after(logits: Tensor, labels: Tensor, temperature: float, path: Path) -> None:
    """The report's reliability diagram of the test split, raw (left) and divided by ``temperature`` (right)."""
    panels = []
    for title, t in (("Test, raw", 1.0), (f"Test, T = {temperature:.3f}", temperature)):
        figures = calibration_figures(logits, labels, t)
        scalars = {"test/ece": figures["ece"], "test/mce": figures["mce"]}
        panels.append(reliability_figure(reliability_bins(logits, labels, t), scalars, title=title))
    save_png(np.concatenate(panels, axis=1), path)
