"""MixUp and CutMix: training batches whose images and labels are mixed pairwise, with soft targets.

They change the labels as well as the images, so they are not augmentations: a data module applies its
``mix`` after the augmentations, to training batches only, and the batch then carries (N, num_classes)
target probabilities instead of class indices. The model's loss takes either (see models/losses.py);
validation and test batches keep their class indices. Each image draws its own mixing proportion
(``lam``, from Beta(alpha, alpha)) and is mixed with another image of the batch (a random permutation).

    mix:
      class_path: lightning_cnn.data.mix.MixUp
      init_args: {alpha: 0.2}
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cnn.data.augment import ShownByArguments, erase_boxes, per_sample
from lightning_cnn.errors import ConfigError
from lightning_cnn.registry import Registry


def _check_alpha(key: str, alpha: float) -> None:
    if not (alpha > 0 and math.isfinite(alpha)):
        raise ConfigError(f"data.mix {key} must be above 0 (the Beta distribution's concentration), got {alpha}")


def _check_probability(key: str, p: float) -> None:
    if not 0 <= p <= 1:
        raise ConfigError(f"data.mix {key} must be in [0, 1], got {p}")


def _beta(n: int, alpha: float, device: torch.device) -> Tensor:
    """n draws of Beta(alpha, alpha) from torch's generator on ``device`` (seeded like every augmentation)."""
    concentration = torch.full((n,), float(alpha), device=device)
    return torch.distributions.Beta(concentration, concentration).sample()


def soft_targets(labels: Tensor, partner: Tensor, lam: Tensor, num_classes: int) -> Tensor:
    """(N, num_classes) targets: ``lam`` on each image's own class, ``1 - lam`` on its partner's."""
    own = F.one_hot(labels, num_classes).float()
    other = F.one_hot(labels[partner], num_classes).float()
    return lam.view(-1, 1) * own + (1 - lam.view(-1, 1)) * other


class BatchMix(ShownByArguments):
    """Base of MixUp and CutMix: ``mix(images, labels, num_classes)`` returns mixed images and soft targets."""

    def __call__(self, images: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


MIXES: Registry[type[BatchMix]] = Registry("batch mixes")


@MIXES.register
class MixUp(BatchMix):
    """MixUp (Zhang et al. 2018): image ``lam · x + (1 - lam) · x_partner``, target likewise.

    Args:
        alpha: Beta(alpha, alpha) concentration of ``lam``; small values (0.2) keep most images close to one
            of the pair, 1 draws ``lam`` uniformly.
        p: probability that an image is mixed at all, in [0, 1] (the others keep their one-hot target).
    """

    def __init__(self, alpha: float = 0.2, p: float = 1.0) -> None:
        _check_alpha("MixUp.alpha", alpha)
        _check_probability("MixUp.p", p)
        self.alpha, self.p = alpha, p

    def __call__(self, images: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        n, device = len(images), images.device
        partner = torch.randperm(n, device=device)
        lam = _beta(n, self.alpha, device)
        lam = torch.where(torch.rand(n, device=device) < self.p, lam, torch.ones_like(lam))
        weight = per_sample(lam.to(images.dtype))
        mixed = weight * images + (1 - weight) * images[partner]
        return mixed, soft_targets(labels, partner, lam, num_classes)


@MIXES.register
class CutMix(BatchMix):
    """CutMix (Yun et al. 2019): a box of the partner image pasted into each image; the target's share of the
    partner is the box's area inside the image.

    Args:
        alpha: Beta(alpha, alpha) concentration of the kept fraction; 1 (the paper's) draws it uniformly.
        p: probability that an image is mixed at all, in [0, 1].
    """

    def __init__(self, alpha: float = 1.0, p: float = 1.0) -> None:
        _check_alpha("CutMix.alpha", alpha)
        _check_probability("CutMix.p", p)
        self.alpha, self.p = alpha, p

    def __call__(self, images: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        n, _, h, w = images.shape
        device = images.device
        partner = torch.randperm(n, device=device)
        cut = torch.sqrt(1 - _beta(n, self.alpha, device))  # box sides as fractions of the image's
        cut = torch.where(torch.rand(n, device=device) < self.p, cut, torch.zeros_like(cut))
        height, width = (cut * h).round().long(), (cut * w).round().long()
        # the box is centred anywhere in the image and clipped at its borders, as in the paper
        top = torch.randint(0, h, (n,), device=device) - height // 2
        left = torch.randint(0, w, (n,), device=device) - width // 2
        box = erase_boxes(images, top, left, height, width)
        mixed = torch.where(box, images[partner], images)
        lam = 1 - box.flatten(1).float().mean(dim=1)  # the fraction of each image that stayed its own
        return mixed, soft_targets(labels, partner, lam, num_classes)


@MIXES.register
class MixUpOrCutMix(BatchMix):
    """MixUp or CutMix, one of the two drawn for each batch.

    Args:
        mixup_alpha: MixUp's Beta concentration.
        cutmix_alpha: CutMix's Beta concentration.
        cutmix_prob: probability that a batch gets CutMix rather than MixUp, in [0, 1].
        p: probability that an image is mixed at all, in [0, 1].
    """

    def __init__(
        self, mixup_alpha: float = 0.2, cutmix_alpha: float = 1.0, cutmix_prob: float = 0.5, p: float = 1.0
    ) -> None:
        _check_probability("MixUpOrCutMix.cutmix_prob", cutmix_prob)
        self.mixup, self.cutmix = MixUp(mixup_alpha, p), CutMix(cutmix_alpha, p)
        self.cutmix_prob = cutmix_prob

    def __call__(self, images: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        # drawn on the CPU: one number per batch, with no device sync
        chosen = self.cutmix if torch.rand(()).item() < self.cutmix_prob else self.mixup
        return chosen(images, labels, num_classes)
