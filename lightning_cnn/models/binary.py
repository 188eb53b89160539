"""Two-class tasks: the two-class logits of a one-logit network, the test's ranking metrics (ROC-AUC, PR-AUC), the
class-1 scores the report draws its curves from, and the decision threshold the validation split suggests.

A network trained with binary cross-entropy emits one logit ``z``; the model turns it into ``[-z/2, z/2]``, whose
softmax is ``[1 - σ(z), σ(z)]``, so predictions (class 1 when ``σ(z) > 0.5``), accuracy, the confusion matrix and every
tool see two classes as they do with cross-entropy's two logits. Either way the score of an image is its class-1
probability.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision
from torchmetrics.utilities import dim_zero_cat


def two_class_logits(logit: Tensor) -> Tensor:
    """(N, 1) logits ``z`` as the (N, 2) logits ``[-z/2, z/2]``: softmax ``[1 - σ(z), σ(z)]``, argmax 1 iff z > 0."""
    half = logit / 2
    return torch.cat([-half, half], dim=1)


class PositiveAUROC(BinaryAUROC):
    """ROC-AUC of the class-1 probability (column 1 of the class probabilities), exact: every score is kept and
    gathered from all processes under DDP."""

    def update(self, probabilities: Tensor, target: Tensor) -> None:  # type: ignore[override]
        super().update(probabilities[:, 1].float(), target)


class PositiveAveragePrecision(BinaryAveragePrecision):
    """PR-AUC as average precision (the precision at each recall step weighted by the step, as scikit-learn's
    ``average_precision_score``) of the class-1 probability; exact as ``PositiveAUROC``."""

    def update(self, probabilities: Tensor, target: Tensor) -> None:  # type: ignore[override]
        super().update(probabilities[:, 1].float(), target)


def ranking_metrics(num_classes: int) -> dict[str, Metric]:
    """``auroc`` and ``auprc`` of class 1 for a two-class task; none for more classes."""
    if num_classes != 2:
        return {}
    return {"auroc": PositiveAUROC(validate_args=False), "auprc": PositiveAveragePrecision(validate_args=False)}


class PositiveScores(Metric):
    """Every image's class-1 probability and class, gathered from all processes: ``compute`` returns a (2, N) float
    tensor (scores, classes) for the ROC and precision-recall curves and the threshold."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("classes", default=[], dist_reduce_fx="cat")

    def update(self, probabilities: Tensor, target: Tensor) -> None:
        self.scores.append(probabilities[:, 1].float())
        self.classes.append(target.float())

    def compute(self) -> Tensor:
        return torch.stack([dim_zero_cat(self.scores), dim_zero_cat(self.classes)])


def youden_threshold(scores: Tensor, classes: Tensor) -> float | None:
    """The class-1 probability threshold that maximizes Youden's J = true positive rate - false positive rate on these
    images (class 1 when the score is above it), midway between the two scores it separates; None without images of
    both classes.

    J is the balanced accuracy (the mean of the two classes' accuracies) less its chance level: it treats both classes
    alike, so the threshold does not depend on which class the folder order made class 1, nor on how common class 1
    is, and a threshold chosen on the validation split carries over to a test split of another class balance.
    """
    positives = int((classes == 1).sum())
    negatives = len(classes) - positives
    if positives == 0 or negatives == 0:
        return None
    order = torch.argsort(scores.double(), descending=True)
    ranked, labels = scores.double()[order], classes[order]
    # the cut after each last image of a run of equal scores: everything up to it is called class 1
    last = torch.cat([ranked[1:] != ranked[:-1], torch.tensor([True])])
    true_positive = torch.cumsum(labels == 1, 0)[last].double()
    false_positive = torch.cumsum(labels != 1, 0)[last].double()
    youden = true_positive / positives - false_positive / negatives
    best = int(torch.argmax(youden))
    cut = ranked[last]
    below = float(cut[best + 1]) if best + 1 < len(cut) else 0.0
    return (float(cut[best]) + below) / 2
