"""The test report of a multi-label run: ``metrics.json`` (the test metrics, average precision, F1 and threshold per
label), ``thresholds.json`` (each label's threshold, tuned on the validation split), a grid of test images captioned
with their true and predicted label sets (``test_predictions.png``, logged as ``test/predictions``) and a per-label
table in the log; the validation grid of every epoch likewise. No confusion matrix: labels are not exclusive.
"""

from __future__ import annotations

import json
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lightning_cnn.training.loggers import log_files, log_image, log_summary, run_dir, run_labels, save_png
from lightning_cnn.training.preview import image_grid

METRICS_FILE = "metrics.json"
THRESHOLDS_FILE = "thresholds.json"
PREDICTIONS_FILE = "test_predictions.png"


def label_set(row: Tensor, classes: list[str]) -> str:
    """The names of a multi-hot row's labels, separated by commas (the grid's font draws a narrow space); ``-`` for
    none."""
    return ",".join(classes[i] for i in row.nonzero().flatten().tolist()) or "-"


@torch.no_grad()
def label_set_grid(
    trainer: L.Trainer, pl_module: Any, datamodule: Any, images: Tensor, targets: Tensor, classes: list[str]
) -> Tensor:
    """uint8 ``images`` with their true label sets and those predicted at the model's thresholds (in red when not the
    same), as ``image_grid``'s (3, H, W) grid; run on this process alone."""
    inputs, _ = datamodule.prepare_batch((images.to(pl_module.device), targets), train=False)
    was_training = pl_module.training
    pl_module.eval()
    try:
        with trainer.precision_plugin.forward_context():
            logits = pl_module(trainer.precision_plugin.convert_input(inputs))
    finally:
        pl_module.train(was_training)
    predicted = (logits.float().sigmoid() > pl_module.label_thresholds.to(logits.device)).cpu()
    truth = [label_set(row, classes) for row in targets.cpu()]
    guessed = [label_set(row, classes) for row in predicted]
    # captions as "classes": a right prediction points at its true caption, a wrong one at its own
    wrong = torch.tensor([t != g for t, g in zip(truth, guessed, strict=True)])
    n = len(truth)
    shown = torch.where(wrong, torch.arange(n) + n, torch.arange(n))
    return image_grid(images.float() / 255, torch.arange(n), tuple(truth + guessed), shown)


def validation_grid(trainer: L.Trainer, pl_module: Any, datamodule: Any, num_images: int) -> Tensor:
    """The first ``num_images`` validation images with their true and predicted label sets."""
    images, targets = datamodule.val_set.images[:num_images], datamodule.val_set.labels[:num_images]
    return label_set_grid(trainer, pl_module, datamodule, images, targets, list(datamodule.classes))


def write_report(trainer: L.Trainer, pl_module: Any, results: dict[str, Tensor], num_images: int) -> None:
    """Log and write the test report of a multi-label run (see the module's docstring)."""
    datamodule = trainer.datamodule
    classes = [str(c) for c in getattr(datamodule, "classes", range(pl_module.num_classes))]
    scalars = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    thresholds = pl_module.label_thresholds.detach().cpu()
    name, tags = run_labels(trainer)
    report: dict[str, Any] = {
        "run_name": name,
        "tags": tags,
        **dict(sorted(scalars.items())),
        "checkpoint": trainer.ckpt_path,
        "classes": classes,
        "per_label_ap": dict(zip(classes, results["per_label_ap"].tolist(), strict=True)),
        "per_label_f1": dict(zip(classes, results["per_label_f1"].tolist(), strict=True)),
        "thresholds": dict(zip(classes, [round(float(t), 6) for t in thresholds], strict=True)),
    }
    test_set = getattr(datamodule, "test_set", None)
    grid = None
    if num_images and test_set is not None:
        images, targets = test_set.images[:num_images], test_set.labels[:num_images]
        grid = label_set_grid(trainer, pl_module, datamodule, images, targets, classes).permute(1, 2, 0).numpy()
        log_image(trainer, "test/predictions", grid, trainer.global_step)
    log_summary(trainer, scalars)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.flush()
    written = ""
    folder = run_dir(trainer) if not trainer.fast_dev_run else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / METRICS_FILE).write_text(json.dumps(report, indent=2) + "\n")
        (folder / THRESHOLDS_FILE).write_text(json.dumps(report["thresholds"], indent=2) + "\n")
        files = [folder / METRICS_FILE, folder / THRESHOLDS_FILE]
        if grid is not None:
            save_png(np.ascontiguousarray(grid), folder / PREDICTIONS_FILE)
            files.append(folder / PREDICTIONS_FILE)
        log_files(trainer, files, "report")
        written = f" (written to {folder / METRICS_FILE}, {', '.join(f.name for f in files[1:])})"
    rank_zero_info(f"Test average precision, F1 and threshold per label{written}:\n{per_label_table(report)}")


def per_label_table(report: dict[str, Any]) -> str:
    """Average precision, F1 and threshold of each label, as aligned text."""
    width = max(5, *(len(name) for name in report["classes"]))
    lines = [f"  {'label':<{width}}  avg prec.        F1  threshold"]
    for name in report["classes"]:
        ap, f1, t = report["per_label_ap"][name], report["per_label_f1"][name], report["thresholds"][name]
        lines.append(f"  {name:<{width}}  {ap:9.4f}  {f1:8.4f}  {t:9.4f}")
    return "\n".join(lines)
