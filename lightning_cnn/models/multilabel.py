"""Multi-label classification: one logit per label, its losses, metrics and per-label decision thresholds.

A model built with ``multi_label: true`` (the CLI links it from a multi-label data module such as
``MultiLabelImageFolder``) emits one logit per label; a label is predicted when its sigmoid is above the label's
threshold. Training minimizes binary cross-entropy per label (``MultiLabelBCELoss``, the default) or the asymmetric
loss (``AsymmetricLoss``). Validation logs ``val/map`` (macro average precision), and at the end of each validation
epoch each label's threshold is tuned to maximize its F1 on the whole validation split; checkpoints keep them, and the
test, ``predict-files`` and ``ensemble`` predict with them. Every metric is a torchmetrics metric whose states are
summed or gathered over processes, so they are exact under DDP.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MultilabelAccuracy,
    MultilabelAveragePrecision,
    MultilabelExactMatch,
    MultilabelF1Score,
)
from torchmetrics.utilities import dim_zero_cat

from lightning_cnn.errors import ConfigError
from lightning_cnn.models.losses import LOSSES, ClassificationLoss

DEFAULT_THRESHOLD = 0.5


class MultiLabelLoss(ClassificationLoss):
    """Base of the losses on one logit per label: ``loss(logits (N, L), multi-hot targets (N, L))``."""

    multi_label = True


def check_pos_weight(pos_weight: float | list[float] | None, name: str) -> None:
    """``pos_weight`` is null, a number above 0, or a list of them."""
    values = pos_weight if isinstance(pos_weight, list) else [pos_weight] if pos_weight is not None else []
    if any(not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)) for v in values) or pos_weight == []:
        raise ConfigError(f"model.loss.pos_weight ({name}) must be above 0: a number, one per label, or null")


@LOSSES.register
class MultiLabelBCELoss(MultiLabelLoss):
    """Binary cross-entropy of every label's logit, averaged over images and labels (``BCEWithLogitsLoss``).

    Args:
        pos_weight: a factor on the positive term: one number for every label, or one per label (e.g. negatives /
            positives of each label, to raise the recall of rare labels); null is 1.
    """

    def __init__(self, pos_weight: float | list[float] | None = None) -> None:
        check_pos_weight(pos_weight, "MultiLabelBCELoss")
        self.pos_weight = pos_weight

    def __call__(
        self, logits: Tensor, targets: Tensor, weight: Tensor | None = None, label_smoothing: float = 0.0
    ) -> Tensor:
        targets = smoothed(targets.float(), label_smoothing)
        pos_weight = None if self.pos_weight is None else label_values(self.pos_weight, logits)
        loss = F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=pos_weight)
        return loss.to(logits.dtype)


@LOSSES.register
class AsymmetricLoss(MultiLabelLoss):
    """The asymmetric loss (Ridnik et al. 2021, "Asymmetric Loss For Multi-Label Classification"), averaged over
    images and labels: ``-(y (1 - p)^gamma_pos log p + (1 - y) p_m^gamma_neg log(1 - p_m))`` with ``p`` the label's
    sigmoid and ``p_m = max(p - clip, 0)``. Easy negatives, which dominate when each image has few of many labels,
    weigh less (``gamma_neg``), and the most certain ones not at all (``clip``); with all three 0 it is binary
    cross-entropy.

    Args:
        gamma_neg: focusing exponent of the negative term, 0 or more (the paper's 4).
        gamma_pos: focusing exponent of the positive term, 0 or more (the paper's 0).
        clip: probability margin shifted off the negatives, in [0, 1) (the paper's 0.05).
    """

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05) -> None:
        for key, value in (("gamma_neg", gamma_neg), ("gamma_pos", gamma_pos)):
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"model.loss.{key} (AsymmetricLoss) must be 0 or more, got {value}")
        if not 0 <= clip < 1:
            raise ConfigError(f"model.loss.clip (AsymmetricLoss) must be in [0, 1), got {clip}")
        self.gamma_neg, self.gamma_pos, self.clip = gamma_neg, gamma_pos, clip

    def __call__(
        self, logits: Tensor, targets: Tensor, weight: Tensor | None = None, label_smoothing: float = 0.0
    ) -> Tensor:
        z = logits.float()
        targets = smoothed(targets.float(), label_smoothing)
        p = torch.sigmoid(z)
        log_p, log_not_p = F.logsigmoid(z), F.logsigmoid(-z)
        if self.clip:
            shifted = (p - self.clip).clamp(min=0)
            log_not = torch.log1p(-shifted.clamp(max=1 - 1e-6))
        else:
            shifted, log_not = p, log_not_p
        positive = (1 - p).pow(self.gamma_pos) * log_p if self.gamma_pos else log_p
        negative = shifted.pow(self.gamma_neg) * log_not if self.gamma_neg else log_not
        return (-(targets * positive + (1 - targets) * negative)).mean().to(logits.dtype)


def smoothed(targets: Tensor, label_smoothing: float) -> Tensor:
    """Multi-hot targets moved ``label_smoothing`` of the way towards 1/2."""
    return targets * (1 - label_smoothing) + label_smoothing / 2 if label_smoothing else targets


def label_values(values: float | list[float], logits: Tensor) -> Tensor:
    """A number per label of ``logits`` (N, L) from one number or a list of L; a ConfigError for a list of another
    length."""
    if isinstance(values, list) and len(values) != logits.shape[1]:
        raise ConfigError(f"model.loss.pos_weight has {len(values)} values but the data has {logits.shape[1]} labels")
    return torch.as_tensor(values, dtype=torch.float32, device=logits.device).expand(logits.shape[1])


def multi_label_loss(loss: ClassificationLoss | None, multi_label: bool, class_weights: Any) -> ClassificationLoss:
    """The training loss of a model: ``loss`` as given for single-label data (a multi-label loss refused), and for
    multi-label data the multi-label loss given, binary cross-entropy per label by default (``BCEWithLogitsLoss`` given
    becomes it, with its ``pos_weight``); a single-label loss is refused in one line."""
    is_multi = getattr(loss, "multi_label", False)
    name = type(loss).__name__
    if not multi_label:
        if is_multi:
            raise ConfigError(
                f"model.loss: {name} is for multi-label data (one logit per label), but the data has one class per"
                " image; use MultiLabelImageFolder, or CrossEntropyLoss"
            )
        assert loss is not None
        return loss
    if class_weights is not None:
        raise ConfigError(
            "model.class_weights weighs classes of single-label data; for multi-label data give"
            " model.loss.pos_weight (MultiLabelBCELoss) per label instead"
        )
    if loss is None:
        return MultiLabelBCELoss()
    if is_multi:
        return loss
    if getattr(loss, "single_logit", False):  # binary cross-entropy asked for: the same, on every label
        return MultiLabelBCELoss(getattr(loss, "pos_weight", None))
    raise ConfigError(
        f"model.loss: {name} picks one class per image, but the data is multi-label (a set of labels per image); use"
        " MultiLabelBCELoss (the default) or AsymmetricLoss"
    )


class Thresholded:
    """A torchmetrics multi-label metric whose ``update`` takes probabilities and per-label ``thresholds``."""

    def update(self, preds: Tensor, target: Tensor, thresholds: Tensor | None = None) -> None:
        if thresholds is not None:
            preds = (preds > thresholds).float()
        super().update(preds, target.long())  # type: ignore[misc]


class ThresholdedF1(Thresholded, MultilabelF1Score):
    """F1 at each label's threshold."""


class ThresholdedHamming(Thresholded, MultilabelAccuracy):
    """Hamming accuracy (the share of (image, label) pairs right) at each label's threshold."""


class ThresholdedExactMatch(Thresholded, MultilabelExactMatch):
    """Exact-match (subset) accuracy: the share of images whose whole label set is right."""


class Ranked(MultilabelAveragePrecision):
    """Average precision of every label's probability, exact: every score is kept and gathered over processes."""

    def update(self, preds: Tensor, target: Tensor) -> None:  # type: ignore[override]
        super().update(preds, target.long())


class LabelScores(Metric):
    """Every image's label probabilities and targets, gathered from all processes: ``compute`` returns the (2, N, L)
    stack (probabilities, targets) the thresholds are tuned on."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, probabilities: Tensor, targets: Tensor) -> None:
        self.scores.append(probabilities.float())
        self.targets.append(targets.float())

    def compute(self) -> Tensor:
        return torch.stack([dim_zero_cat(self.scores), dim_zero_cat(self.targets)])


def evaluation_metrics(num_labels: int, prefix: str) -> MetricCollection:
    """``acc`` (exact match), ``map`` (macro average precision), ``f1`` (macro), ``f1_micro`` and ``hamming_acc``."""
    metrics: dict[str, Metric] = {
        "acc": ThresholdedExactMatch(num_labels),
        "map": Ranked(num_labels, average="macro"),
        "f1": ThresholdedF1(num_labels, average="macro"),
        "f1_micro": ThresholdedF1(num_labels, average="micro"),
        "hamming_acc": ThresholdedHamming(num_labels, average="micro"),
    }
    return MetricCollection(metrics, prefix=prefix, compute_groups=False)


def test_tables(num_labels: int) -> MetricCollection:
    """Per-label average precision and F1 for ``metrics.json``."""
    tables = {
        "per_label_ap": Ranked(num_labels, average=None),
        "per_label_f1": ThresholdedF1(num_labels, average=None),
    }
    return MetricCollection(tables, compute_groups=False)  # type: ignore[arg-type]


def f1_thresholds(scores: Tensor, targets: Tensor) -> Tensor:
    """Each label's probability threshold that maximizes its F1 on these images (predicted when above it), midway
    between the two scores it separates; 0.5 for a label without any positive image."""
    thresholds = torch.full((scores.shape[1],), DEFAULT_THRESHOLD, dtype=torch.float64)
    for label in range(scores.shape[1]):
        column, truth = scores[:, label].double(), targets[:, label] > 0.5
        positives = int(truth.sum())
        if positives == 0:
            continue
        order = torch.argsort(column, descending=True)
        ranked, hits = column[order], truth[order]
        last = torch.cat([ranked[1:] != ranked[:-1], torch.tensor([True])])  # the cut after a run of equal scores
        true_positive = torch.cumsum(hits, 0)[last].double()
        called = (torch.arange(1, len(ranked) + 1)[last]).double()
        f1 = 2 * true_positive / (called + positives)
        best = int(torch.argmax(f1))
        cut = ranked[last]
        below = float(cut[best + 1]) if best + 1 < len(cut) else 0.0
        thresholds[label] = (float(cut[best]) + below) / 2
    return thresholds.float()


def model_step(model: Any, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
    """``ImageClassifier._step`` for multi-label data: the loss, the training exact-match counts and the evaluation
    metrics (validation at 0.5, test at the tuned thresholds)."""
    x, y = batch
    logits = model(x)
    if stage == "train":
        loss = model.loss(logits, y, None, model.label_smoothing)
        correct = ((logits.detach() > 0) == (y > 0.5)).all(dim=1).sum()
        model._train_correct = correct if model._train_correct is None else model._train_correct + correct
        model._train_seen += len(y)
        return loss
    loss = F.binary_cross_entropy_with_logits(logits.float(), y.float())
    probabilities = logits.detach().float().sigmoid()
    thresholds = model.label_thresholds.to(probabilities.device) if stage == "test" else None
    getattr(model, f"{stage}_metrics").update(probabilities, y, thresholds=thresholds)
    getattr(model, f"{stage}_loss").update(loss.detach(), weight=len(y))
    if stage == "val":
        model.label_scores.update(probabilities, y)
    if stage == "test":
        model.test_tables.update(probabilities, y, thresholds=thresholds)
    return loss


def tune_thresholds(model: Any) -> None:
    """At the end of a validation epoch (not the sanity check): each label's F1-best threshold on the whole
    validation split, kept on the model (and so in its checkpoints)."""
    scores: LabelScores = model.label_scores
    if not scores.update_called:
        return
    if not model.trainer.sanity_checking:
        probabilities, targets = scores.compute()
        model.label_thresholds.copy_(f1_thresholds(probabilities.cpu(), targets.cpu()))
    scores.reset()


def thresholds_record(thresholds: Tensor, classes: list[str]) -> dict[str, float]:
    """Each label's threshold by name (``thresholds.json``, ``metrics.json``)."""
    return {name: round(float(t), 6) for name, t in zip(classes, thresholds.tolist(), strict=True)}


def multilabel_figures(probabilities: Tensor, targets: Tensor, thresholds: Tensor) -> dict[str, float]:
    """``map``, ``f1`` (macro), ``f1_micro``, ``hamming_acc`` and ``acc`` (exact match) of label probabilities against
    multi-hot targets, predicted at ``thresholds``: the test's figures, outside a Trainer (``ensemble``)."""
    collection = evaluation_metrics(probabilities.shape[1], "")
    collection.update(probabilities.float(), targets, thresholds=thresholds)
    return {name: float(value) for name, value in collection.compute().items()}
