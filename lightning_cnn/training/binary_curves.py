"""The test report of a two-class task: the ROC curve and the precision-recall curve of the class-1 probability, as
images (``roc.png``, ``pr.png``), each marking where the model's 0.5 threshold and the validation split's threshold
fall on the test split."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_precision_recall_curve, binary_roc

DEFAULT_THRESHOLD = 0.5  # the model's own: class 1 when its probability is above it


def binary_curves(
    scores: Tensor, scalars: dict[str, float], val_threshold: float | None, positive: str = "class 1"
) -> dict[str, np.ndarray]:
    """``roc`` and ``pr`` images (RGB uint8, H × W × 3) of the test split's class-1 scores and classes (the (2, N)
    result of ``PositiveScores``), class 1 named ``positive`` on the axes; none when the split lacks one of the
    classes (no curve is defined)."""
    probabilities, classes = scores[0].double(), scores[1].long()
    if not (classes == 1).any() or not (classes == 0).any():
        return {}
    thresholds = {f"threshold {DEFAULT_THRESHOLD}": DEFAULT_THRESHOLD}
    if val_threshold is not None:
        thresholds[f"validation threshold {val_threshold:.3f}"] = val_threshold
    points = {name: operating_point(probabilities, classes, value) for name, value in thresholds.items()}
    return {
        "roc": roc_figure(probabilities, classes, points, scalars.get("test/auroc"), positive),
        "pr": pr_figure(probabilities, classes, points, scalars.get("test/auprc"), positive),
    }


def operating_point(scores: Tensor, classes: Tensor, threshold: float) -> tuple[float, float, float]:
    """(false positive rate, true positive rate = recall, precision) of calling class 1 the scores above
    ``threshold``; precision is 1 when nothing is called class 1."""
    called = scores > threshold
    true_positive = float((called & (classes == 1)).sum())
    false_positive = float((called & (classes == 0)).sum())
    positives, negatives = float((classes == 1).sum()), float((classes == 0).sum())
    precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else 1.0
    return false_positive / negatives, true_positive / positives, precision


def _figure(title: str) -> tuple[Any, Any]:
    """A square figure's canvas and axes, both rates from 0 to 1."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 5.5), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set(xlim=(0, 1), ylim=(0, 1.02))
    axes.set_aspect("equal")
    return canvas, axes


def _pixels(canvas: Any) -> np.ndarray:
    """The drawn canvas as an RGB uint8 image (H, W, 3)."""
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def roc_figure(
    scores: Tensor,
    classes: Tensor,
    points: dict[str, tuple[float, float, float]],
    auroc: float | None,
    positive: str = "class 1",
) -> np.ndarray:
    """The ROC curve (true positive rate against false positive rate over every threshold), the chance diagonal and
    the operating points ``points`` (name → (fpr, tpr, precision))."""
    fpr, tpr, _ = binary_roc(scores, classes, thresholds=None)
    title = f"Test ROC curve, {len(classes)} images" + (f", AUC {auroc:.4f}" if auroc is not None else "")
    canvas, axes = _figure(title)
    axes.plot(fpr.numpy(), tpr.numpy(), color="tab:blue", label="ROC")
    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance")
    for (name, (x, y, _)), marker in zip(points.items(), ("o", "s"), strict=False):
        axes.plot([x], [y], marker, markersize=7, label=name)
    axes.set(xlabel="false positive rate", ylabel=f"true positive rate (recall of {positive})")
    axes.legend(loc="lower right")
    return _pixels(canvas)


def pr_figure(
    scores: Tensor,
    classes: Tensor,
    points: dict[str, tuple[float, float, float]],
    auprc: float | None,
    positive: str = "class 1",
) -> np.ndarray:
    """The precision-recall curve of class 1, the precision of calling everything class 1 (its share of the images)
    and the operating points ``points`` (name → (fpr, recall, precision))."""
    precision, recall, _ = binary_precision_recall_curve(scores, classes, thresholds=None)
    title = f"Test precision-recall curve, {len(classes)} images" + (f", AP {auprc:.4f}" if auprc is not None else "")
    canvas, axes = _figure(title)
    axes.plot(recall.numpy(), precision.numpy(), color="tab:blue", drawstyle="steps-post", label="precision-recall")
    share = float(torch.as_tensor(classes == 1).double().mean())
    axes.axhline(share, linestyle="--", color="gray", label=f"chance ({share:.3f})")
    for (name, (_, x, y)), marker in zip(points.items(), ("o", "s"), strict=False):
        axes.plot([x], [y], marker, markersize=7, label=name)
    axes.set(xlabel=f"recall of {positive}", ylabel=f"precision of {positive}")
    axes.legend(loc="lower left")
    return _pixels(canvas)
