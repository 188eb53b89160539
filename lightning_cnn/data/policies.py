"""Augmentation policies (RandAugment, TrivialAugmentWide, AutoAugment), batched and random per sample.

Every image of a batch draws its own operations and magnitudes. Each operation then runs once, on the
images that drew it (gathered with ``index_select``), so a policy costs about one pass over the batch per
operation, on the batch's device. Operations and magnitude ranges follow torchvision's versions; the
images are floats in [0, 1], so a pixel level ``v`` of torchvision's uint8 images is ``v / 255`` here.
Shears turn about the image centre (torchvision's turn about the top-left corner), and the area that a
geometric operation uncovers is black, as in torchvision by default.

Configure one after the usual crop and flip, e.g. ``--data.augment+=TrivialAugmentWide``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cnn.data.augment import (
    AUGMENTATIONS,
    BatchAugmentation,
    affine,
    check_range,
    per_sample,
    rotation_theta,
)

# --- the operations: images (n, C, H, W) in [0, 1] and one signed magnitude per image ----------------


def _luma(images: Tensor) -> Tensor:
    """(n, 1, H, W) brightness: ITU-R 601 weights for RGB (as torchvision), the mean for other channel counts."""
    if images.shape[1] != 3:
        return images.mean(dim=1, keepdim=True)
    r, g, b = images.unbind(dim=1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _blend(images: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor · images + (1 - factor) · other`` per image, clamped to [0, 1]."""
    return (other + per_sample(factor.to(images.dtype)) * (images - other)).clamp(0, 1)


def _theta(images: Tensor) -> Tensor:
    """Identity affine maps (n, 2, 3) of ``images``' batch, to be edited by the geometric operations."""
    return torch.eye(2, 3, device=images.device).repeat(len(images), 1, 1)


def shear_x(images: Tensor, magnitude: Tensor) -> Tensor:
    """Shear along x by ``magnitude`` pixels per pixel of height, about the centre."""
    _, _, h, w = images.shape
    theta = _theta(images)
    theta[:, 0, 1] = magnitude * h / w  # in normalized coordinates, whose x and y units differ when h != w
    return affine(images, theta)


def shear_y(images: Tensor, magnitude: Tensor) -> Tensor:
    """Shear along y by ``magnitude`` pixels per pixel of width, about the centre."""
    _, _, h, w = images.shape
    theta = _theta(images)
    theta[:, 1, 0] = magnitude * w / h
    return affine(images, theta)


def translate_x(images: Tensor, magnitude: Tensor) -> Tensor:
    """Shift right by ``magnitude`` pixels, rounded to whole pixels (so the content is not blurred)."""
    theta = _theta(images)
    theta[:, 0, 2] = -2 * magnitude.round() / images.shape[3]
    return affine(images, theta)


def translate_y(images: Tensor, magnitude: Tensor) -> Tensor:
    """Shift down by ``magnitude`` pixels, rounded to whole pixels."""
    theta = _theta(images)
    theta[:, 1, 2] = -2 * magnitude.round() / images.shape[2]
    return affine(images, theta)


def rotate(images: Tensor, magnitude: Tensor) -> Tensor:
    """Rotate by ``magnitude`` degrees about the centre."""
    _, _, h, w = images.shape
    return affine(images, rotation_theta(torch.deg2rad(magnitude), h, w))


def brightness(images: Tensor, magnitude: Tensor) -> Tensor:
    """Scale the pixels by ``1 + magnitude`` (blend with black)."""
    return _blend(images, torch.zeros_like(images), 1 + magnitude)


def color(images: Tensor, magnitude: Tensor) -> Tensor:
    """Saturation ``1 + magnitude`` (blend with the gray image); single-channel images are left unchanged."""
    if images.shape[1] != 3:
        return images
    return _blend(images, _luma(images), 1 + magnitude)


def contrast(images: Tensor, magnitude: Tensor) -> Tensor:
    """Contrast ``1 + magnitude`` (blend with the image's mean gray level)."""
    mean = _luma(images).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, mean.expand_as(images), 1 + magnitude)


def sharpness(images: Tensor, magnitude: Tensor) -> Tensor:
    """Sharpness ``1 + magnitude``: blend with a 3×3 smoothed copy (PIL's kernel); border pixels are kept."""
    smooth = images.clone()
    # PIL's kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 is 9/13 of a 3×3 mean plus 4/13 of the centre pixel
    smooth[:, :, 1:-1, 1:-1] = (9 * F.avg_pool2d(images, 3, stride=1) + 4 * images[:, :, 1:-1, 1:-1]) / 13
    return _blend(images, smooth, 1 + magnitude)


def posterize(images: Tensor, magnitude: Tensor) -> Tensor:
    """Drop the ``round(magnitude)`` lowest of the 8 bits of each pixel level."""
    step = (2.0 ** magnitude.round()).to(images.dtype)
    levels = (images * 255).round()
    return torch.div(levels, per_sample(step), rounding_mode="floor") * per_sample(step) / 255


def solarize(images: Tensor, magnitude: Tensor) -> Tensor:
    """Invert the pixels at or above the threshold ``1 - magnitude``."""
    threshold = per_sample((1 - magnitude).to(images.dtype))
    return torch.where(images >= threshold, 1 - images, images)


def autocontrast(images: Tensor, magnitude: Tensor) -> Tensor:
    """Stretch each channel's levels to [0, 1]; a flat channel is left unchanged."""
    low = images.amin(dim=(2, 3), keepdim=True)
    high = images.amax(dim=(2, 3), keepdim=True)
    flat = high <= low
    scale = torch.where(flat, torch.ones_like(high), 1 / (high - low).clamp_min(1e-12))
    return ((images - torch.where(flat, torch.zeros_like(low), low)) * scale).clamp(0, 1)


def equalize(images: Tensor, magnitude: Tensor) -> Tensor:
    """Equalize each channel's histogram of 256 levels, as PIL's ``ImageOps.equalize`` does."""
    n, c, h, w = images.shape
    levels = (images * 255).round().long().clamp(0, 255).view(n * c, h * w)
    hist = torch.zeros(n * c, 256, device=images.device, dtype=images.dtype)
    hist.scatter_add_(1, levels, torch.ones_like(levels, dtype=images.dtype))
    last = hist.gather(1, levels.amax(dim=1, keepdim=True))  # pixels at the highest level in use
    step = torch.div(h * w - last, 255, rounding_mode="floor")
    below = hist.cumsum(dim=1) - hist  # pixels below each level
    lut = torch.div(below + torch.div(step, 2, rounding_mode="floor"), step.clamp_min(1), rounding_mode="floor")
    out = lut.clamp(max=255).gather(1, levels) / 255
    # with fewer than one step of pixels outside the top level there is nothing to spread: keep the channel
    out = torch.where(step > 0, out, levels.to(images.dtype) / 255)
    return out.view(n, c, h, w)


def invert(images: Tensor, magnitude: Tensor) -> Tensor:
    """``1 - x``."""
    return 1 - images


Operation = Callable[[Tensor, Tensor], Tensor]


class Op(NamedTuple):
    """One operation of a policy: the function, its magnitude at the top level, and whether its sign is drawn."""

    function: Operation
    top: float
    signed: bool


def policy_ops(wide: bool, height: int, width: int) -> dict[str, Op]:
    """torchvision's operations and ranges: RandAugment's and AutoAugment's, or TrivialAugmentWide's (``wide``).

    Translations are in pixels (a fraction 150/331 of the size, or 32 pixels when wide), posterize's top is the
    number of bits dropped, solarize's the fraction of the range inverted.
    """
    shear, rotation, factor = (0.99, 135.0, 0.99) if wide else (0.3, 30.0, 0.9)
    shift_x, shift_y = (32.0, 32.0) if wide else (150 / 331 * width, 150 / 331 * height)
    return {
        "ShearX": Op(shear_x, shear, True),
        "ShearY": Op(shear_y, shear, True),
        "TranslateX": Op(translate_x, shift_x, True),
        "TranslateY": Op(translate_y, shift_y, True),
        "Rotate": Op(rotate, rotation, True),
        "Brightness": Op(brightness, factor, True),
        "Color": Op(color, factor, True),
        "Contrast": Op(contrast, factor, True),
        "Sharpness": Op(sharpness, factor, True),
        "Posterize": Op(posterize, 6.0 if wide else 4.0, False),
        "Solarize": Op(solarize, 1.0, False),
        "AutoContrast": Op(autocontrast, 0.0, False),
        "Equalize": Op(equalize, 0.0, False),
        "Invert": Op(invert, 0.0, False),
    }


def apply_per_sample(images: Tensor, ops: Sequence[Op | None], choice: Tensor, level: Tensor) -> Tensor:
    """Image i through ``ops[choice[i]]`` (None: unchanged) at ``level[i]`` in [0, 1] of the op's range, with a
    random sign for signed ops. Each op runs once on the images that chose it; one device sync per call."""
    counts = torch.bincount(choice, minlength=len(ops)).tolist()
    order = torch.argsort(choice, stable=True)
    sign = torch.where(torch.rand(len(images), device=images.device) < 0.5, -1.0, 1.0)
    out = images.clone()
    for op, index in zip(ops, order.split(counts), strict=True):
        if op is None or len(index) == 0:
            continue
        magnitude = op.top * level.index_select(0, index)
        if op.signed:
            magnitude = magnitude * sign.index_select(0, index)
        out.index_copy_(0, index, op.function(images.index_select(0, index), magnitude))
    return out


def _check_p(name: str, p: float) -> None:
    check_range(f"{name}.p", p, 0, 1)


def _skip_unchosen(choice: Tensor, p: float, identity: int = 0) -> Tensor:
    """Samples not drawn with probability ``p`` take op ``identity``."""
    if p >= 1:
        return choice
    return torch.where(torch.rand(len(choice), device=choice.device) < p, choice, identity)


# operations RandAugment and TrivialAugmentWide draw from (identity included), as torchvision's
UNIFORM_OPS = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
    "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
)  # fmt: skip


@AUGMENTATIONS.register
class RandAugment(BatchAugmentation):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` operations in a row, each drawn uniformly per image, all at
    magnitude ``magnitude`` of ``num_magnitude_bins`` levels (signs drawn per image).

    Args:
        num_ops: operations per image (N); 0 leaves images unchanged.
        magnitude: strength M, from 0 to ``num_magnitude_bins - 1``.
        num_magnitude_bins: number of strength levels (torchvision's 31).
        p: probability that an image goes through the policy at all, in [0, 1].
    """

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31, p: float = 1.0) -> None:
        check_range("RandAugment.num_ops", num_ops, 0)
        check_range("RandAugment.num_magnitude_bins", num_magnitude_bins, 2)
        check_range("RandAugment.magnitude", magnitude, 0, num_magnitude_bins - 1)
        _check_p("RandAugment", p)
        self.num_ops, self.magnitude, self.num_magnitude_bins, self.p = num_ops, magnitude, num_magnitude_bins, p

    def __call__(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        space = policy_ops(wide=False, height=h, width=w)
        ops = [space.get(name) for name in UNIFORM_OPS]
        level = torch.full((n,), self.magnitude / (self.num_magnitude_bins - 1), device=images.device)
        applied = _skip_unchosen(torch.ones(n, dtype=torch.long, device=images.device), self.p)
        for _ in range(self.num_ops):
            choice = torch.randint(0, len(ops), (n,), device=images.device) * applied
            images = apply_per_sample(images, ops, choice, level)
        return images


@AUGMENTATIONS.register
class TrivialAugmentWide(BatchAugmentation):
    """TrivialAugment (Müller and Hutter 2021), wide ranges: one operation per image, drawn uniformly, at a
    magnitude drawn uniformly from ``num_magnitude_bins`` levels. Nothing to tune.

    Args:
        num_magnitude_bins: number of strength levels (torchvision's 31).
        p: probability that an image is augmented at all, in [0, 1].
    """

    def __init__(self, num_magnitude_bins: int = 31, p: float = 1.0) -> None:
        check_range("TrivialAugmentWide.num_magnitude_bins", num_magnitude_bins, 2)
        _check_p("TrivialAugmentWide", p)
        self.num_magnitude_bins, self.p = num_magnitude_bins, p

    def __call__(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        space = policy_ops(wide=True, height=h, width=w)
        ops = [space.get(name) for name in UNIFORM_OPS]
        choice = _skip_unchosen(torch.randint(0, len(ops), (n,), device=images.device), self.p)
        level = torch.randint(0, self.num_magnitude_bins, (n,), device=images.device) / (self.num_magnitude_bins - 1)
        return apply_per_sample(images, ops, choice, level)


# AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, appendix): 25 sub-policies of two (operation, probability,
# magnitude level out of 0..9) steps; None where the operation has no magnitude.
CIFAR10_POLICY: tuple[tuple[tuple[str, float, int | None], tuple[str, float, int | None]], ...] = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)
AUTOAUGMENT_LEVELS = 10


@AUGMENTATIONS.register
class AutoAugment(BatchAugmentation):
    """AutoAugment (Cubuk et al. 2019) with its CIFAR-10 policy: each image draws one of the 25 sub-policies
    and goes through its two steps, each applied with the step's own probability.

    Args:
        p: probability that an image goes through the policy at all, in [0, 1].
    """

    def __init__(self, p: float = 1.0) -> None:
        _check_p("AutoAugment", p)
        self.p = p

    def __call__(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        device = images.device
        space = policy_ops(wide=False, height=h, width=w)
        names = ["Identity", *space]
        ops = [space.get(name) for name in names]
        table = [[(names.index(op), prob, level or 0) for op, prob, level in steps] for steps in CIFAR10_POLICY]
        op_id, prob, level = torch.tensor(table, device=device).unbind(dim=2)
        sub = _skip_unchosen(torch.randint(0, len(table), (n,), device=device), self.p, identity=-1)
        for step in range(2):
            chosen = sub.clamp(min=0)
            taken = (torch.rand(n, device=device) < prob[chosen, step]) & (sub >= 0)
            choice = torch.where(taken, op_id[chosen, step].long(), 0)
            images = apply_per_sample(images, ops, choice, level[chosen, step] / (AUTOAUGMENT_LEVELS - 1))
        return images
