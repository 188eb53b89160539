"""Training losses, chosen with ``model.loss``: cross-entropy (the default), focal loss, and binary cross-entropy on
one logit for two-class tasks.

A loss takes logits and either class indices (N,) or target probabilities (N, K) (MixUp/CutMix batches),
plus the two options every loss shares, given on the model: per-class weights (``model.class_weights``) and
label smoothing (``model.label_smoothing``). Both follow ``torch.nn.functional.cross_entropy``: the mean
over class indices is weighted by each image's class weight, the mean over probabilities is over images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cnn.data.augment import ShownByArguments
from lightning_cnn.errors import ConfigError
from lightning_cnn.registry import Registry


class ClassificationLoss(ShownByArguments):
    """Base of every loss: ``loss(logits, targets, weight, label_smoothing)`` returns a scalar."""

    # True for a loss of one logit per image (binary cross-entropy): the model's network then emits one output
    single_logit: bool = False

    def __call__(
        self, logits: Tensor, targets: Tensor, weight: Tensor | None = None, label_smoothing: float = 0.0
    ) -> Tensor:
        raise NotImplementedError


LOSSES: Registry[type[ClassificationLoss]] = Registry("losses")


@LOSSES.register
class CrossEntropyLoss(ClassificationLoss):
    """Cross-entropy: ``-Σ_k t_k log p_k``."""

    def __call__(
        self, logits: Tensor, targets: Tensor, weight: Tensor | None = None, label_smoothing: float = 0.0
    ) -> Tensor:
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)


@LOSSES.register
class FocalLoss(ClassificationLoss):
    """Focal loss (Lin et al. 2017) for softmax classifiers: ``-alpha Σ_k t_k (1 - p_k)^gamma log p_k``.

    It down-weights the images the model already gets right, so training dwells on the hard ones; with
    gamma 0 and alpha 1 it is cross-entropy. Per-class balance is ``model.class_weights``.

    Args:
        gamma: focusing exponent, 0 or more (the paper's 2).
        alpha: a factor on the whole loss, above 0 (as in kornia's ``focal_loss``).
    """

    def __init__(self, gamma: float = 2.0, alpha: float = 1.0) -> None:
        if not (gamma >= 0 and math.isfinite(gamma)):
            raise ConfigError(f"model.loss.gamma (FocalLoss) must be 0 or more, got {gamma}")
        if not (alpha > 0 and math.isfinite(alpha)):
            raise ConfigError(f"model.loss.alpha (FocalLoss) must be above 0, got {alpha}")
        self.gamma, self.alpha = gamma, alpha

    def __call__(
        self, logits: Tensor, targets: Tensor, weight: Tensor | None = None, label_smoothing: float = 0.0
    ) -> Tensor:
        num_classes = logits.shape[1]
        log_p = F.log_softmax(logits.float(), dim=1)
        hard = targets.ndim == 1
        probs = F.one_hot(targets, num_classes).float() if hard else targets.float()
        if label_smoothing:
            probs = probs * (1 - label_smoothing) + label_smoothing / num_classes
        terms = -probs * (1 - log_p.exp()).pow(self.gamma) * log_p
        if weight is not None:
            terms = terms * weight.view(1, -1)
        # cross_entropy's reductions: weighted mean over class indices, plain mean over probabilities
        total = weight[targets].sum() if hard and weight is not None else len(logits)
        return (self.alpha * terms.sum() / total).to(logits.dtype)


@LOSSES.register
class BCEWithLogitsLoss(ClassificationLoss):
    """Binary cross-entropy on one logit ``z`` per image, for two classes: ``-(t log σ(z) + (1 - t) log(1 - σ(z)))``
    with ``t`` the probability of class 1; class 1 is predicted when ``σ(z) > 0.5``.

    The model's network then emits one output (``ImageClassifier.num_outputs``) and its forward returns the two-class
    logits ``[-z/2, z/2]``, whose softmax is ``[1 - σ(z), σ(z)]``; this loss reads ``z`` back as their difference.
    Class weights, label smoothing (towards 1/2) and mixed batches follow cross-entropy's rules.

    Args:
        pos_weight: a factor on the class-1 term (as ``torch.nn.BCEWithLogitsLoss``'s): above 1 raises recall of
            class 1, e.g. negatives / positives for a rare class 1; null is 1.
    """

    single_logit = True

    def __init__(self, pos_weight: float | None = None) -> None:
        if pos_weight is not None and not (pos_weight > 0 and math.isfinite(pos_weight)):
            raise ConfigError(f"model.loss.pos_weight (BCEWithLogitsLoss) must be above 0 or null, got {pos_weight}")
        self.pos_weight = pos_weight

    def __call__(
        self, logits: Tensor, targets: Tensor, weight: Tensor | None = None, label_smoothing: float = 0.0
    ) -> Tensor:
        z = (logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits[:, 0]).float()
        hard = targets.ndim == 1
        positive = targets.float() if hard else targets[:, 1].float()
        if label_smoothing:
            positive = positive * (1 - label_smoothing) + label_smoothing / 2
        log_yes, log_no = F.logsigmoid(z), F.logsigmoid(-z)
        yes_weight = torch.ones_like(z) if weight is None else weight[1].float().expand_as(z)
        no_weight = torch.ones_like(z) if weight is None else weight[0].float().expand_as(z)
        if self.pos_weight is not None:
            yes_weight = yes_weight * self.pos_weight
        terms = -(yes_weight * positive * log_yes + no_weight * (1 - positive) * log_no)
        # cross_entropy's reductions: weighted mean over class indices, plain mean over probabilities
        total = weight[targets].sum() if hard and weight is not None else len(logits)
        return (terms.sum() / total).to(logits.dtype)


def balanced_weights(counts: Tensor) -> Tensor:
    """Inverse class frequency, ``total / (classes · count)`` (1 for every class of a balanced set, as
    scikit-learn's ``balanced``); 0 for a class without training images."""
    counts = counts.double()
    weights = counts.sum() / (len(counts) * counts)
    return torch.where(counts > 0, weights, torch.zeros_like(weights)).float()
