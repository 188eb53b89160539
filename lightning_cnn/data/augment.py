"""Batched augmentations: random per sample, computed for the whole batch at once on its device.

Each one maps float images (N, C, H, W) in [0, 1] to the same shape and dtype. Random numbers come from
torch's generator on the batch's device, so ``seed_everything`` makes a run repeatable while every
batch (and so every epoch) draws new ones. Configure them as an ordered list in a data module::

    augment:
      - class_path: lightning_cnn.data.augment.RandomCrop
        init_args: {padding: 4}
      - class_path: lightning_cnn.data.augment.HorizontalFlip
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cnn.errors import ConfigError
from lightning_cnn.registry import Registry

# check_range, per_sample, affine, rotation_theta and erase_boxes are shared with data.policies and data.mix.


def check_range(name: str, value: float, low: float, high: float = math.inf) -> None:
    """Refuse an augmentation's option ``name`` outside [``low``, ``high``] with a ConfigError that says the range,
    when the augmentation is configured rather than at its first batch."""
    if not low <= value <= high:
        allowed = f"at least {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ConfigError(f"augment {name} must be {allowed}, got {value}")


def _check_interval(name: str, interval: tuple[float, float], low: float, high: float = math.inf) -> None:
    if len(interval) != 2 or not low <= interval[0] <= interval[1] <= high:
        allowed = f"at least {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ConfigError(f"augment {name} must be (min, max) with min <= max, both {allowed}; got {interval}")


def _uniform(n: int, low: float | Tensor, high: float | Tensor, device: torch.device) -> Tensor:
    """n values drawn uniformly in [low, high) from torch's generator on ``device``."""
    return low + (high - low) * torch.rand(n, device=device)


def per_sample(mask: Tensor) -> Tensor:
    """(N,) values → (N, 1, 1, 1), to pick between (or weigh) two batches sample by sample."""
    return mask.view(-1, 1, 1, 1)


def affine(images: Tensor, theta: Tensor) -> Tensor:
    """Sample ``images`` through per-sample affine maps (N, 2, 3) of output → input coordinates: every geometric
    augmentation is one such map, sampled once (bilinear, zeros outside)."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotation_theta(angle: Tensor, h: int, w: int) -> Tensor:
    """Affine maps (N, 2, 3) for ``affine`` rotating each image about its centre by ``angle`` radians."""
    cos, sin = angle.cos(), angle.sin()
    aspect = w / h  # normalized coordinates stretch non-square images: undo it so angles stay angles
    theta = torch.zeros(len(angle), 2, 3, device=angle.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin / aspect
    theta[:, 1, 0], theta[:, 1, 1] = sin * aspect, cos
    return theta


class ShownByArguments:
    """Base of the small configurable classes kept in registries (augmentations, mixes, losses): their repr is the
    class and its arguments, as a config would give them."""

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({args})"


class BatchAugmentation(ShownByArguments):
    """Base of every augmentation: ``aug(images)`` returns a new batch, random per sample."""

    def __call__(self, images: Tensor) -> Tensor:
        raise NotImplementedError


AUGMENTATIONS: Registry[type[BatchAugmentation]] = Registry("augmentations")


@AUGMENTATIONS.register
class RandomCrop(BatchAugmentation):
    """Pad every side by ``padding`` pixels (zeros), then crop the original size at a random place per image.

    Args:
        padding: pixels added on each side; 0 leaves the images unchanged.
    """

    def __init__(self, padding: int = 4) -> None:
        check_range("RandomCrop.padding", padding, 0)
        self.padding = padding

    def __call__(self, images: Tensor) -> Tensor:
        if self.padding == 0:
            return images
        n, c, h, w = images.shape
        p, device = self.padding, images.device
        padded_w = w + 2 * p
        padded = F.pad(images, (p, p, p, p)).reshape(n, c, -1)
        top = torch.randint(0, 2 * p + 1, (n, 1, 1), device=device)
        left = torch.randint(0, 2 * p + 1, (n, 1, 1), device=device)
        # one gather of each image's window from the flattened padded pixels (faster than a gather per axis)
        rows = top + torch.arange(h, device=device).view(1, h, 1)
        cols = left + torch.arange(w, device=device).view(1, 1, w)
        index = (rows * padded_w + cols).view(n, 1, h * w).expand(n, c, h * w)
        return padded.gather(2, index).view(n, c, h, w)


@AUGMENTATIONS.register
class HorizontalFlip(BatchAugmentation):
    """Mirror each image left-right with probability ``p``.

    Args:
        p: probability of flipping one image, in [0, 1].
    """

    def __init__(self, p: float = 0.5) -> None:
        check_range("HorizontalFlip.p", p, 0, 1)
        self.p = p

    def __call__(self, images: Tensor) -> Tensor:
        flip = torch.rand(len(images), device=images.device) < self.p
        return torch.where(per_sample(flip), images.flip(3), images)


@AUGMENTATIONS.register
class Rotation(BatchAugmentation):
    """Rotate each image about its centre by an angle drawn uniformly in [-degrees, degrees] (zeros fill).

    Args:
        degrees: largest rotation either way, in [0, 180].
    """

    def __init__(self, degrees: float = 10.0) -> None:
        check_range("Rotation.degrees", degrees, 0, 180)
        self.degrees = degrees

    def __call__(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        angle = torch.deg2rad(_uniform(n, -self.degrees, self.degrees, images.device))
        return affine(images, rotation_theta(angle, h, w))


@AUGMENTATIONS.register
class RandomResizedCrop(BatchAugmentation):
    """Crop a random box per image (area fraction in ``scale``, aspect ratio in ``ratio``), resize it back.

    The output keeps the input size (bilinear sampling), as torchvision's ``RandomResizedCrop(size)`` does
    when ``size`` is the input size.

    Args:
        scale: (min, max) fraction of the image area the box covers, within (0, 1].
        ratio: (min, max) width / height of the box, drawn log-uniformly; both above 0.
    """

    def __init__(self, scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        _check_interval("RandomResizedCrop.scale", scale, 1e-6, 1)
        _check_interval("RandomResizedCrop.ratio", ratio, 1e-6)
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def __call__(self, images: Tensor) -> Tensor:
        n, device = len(images), images.device
        area = _uniform(n, self.scale[0], self.scale[1], device)
        ratio = torch.exp(_uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), device))
        # box sides as fractions of the image's width and height (clamped: a box cannot leave the image)
        width = torch.sqrt(area * ratio).clamp(max=1)
        height = torch.sqrt(area / ratio).clamp(max=1)
        cx = _uniform(n, -(1 - width), 1 - width, device)  # box centre in normalized [-1, 1] coordinates
        cy = _uniform(n, -(1 - height), 1 - height, device)
        theta = torch.zeros(n, 2, 3, device=device)
        theta[:, 0, 0], theta[:, 0, 2] = width, cx
        theta[:, 1, 1], theta[:, 1, 2] = height, cy
        return affine(images, theta)


@AUGMENTATIONS.register
class ColorJitter(BatchAugmentation):
    """Random brightness, contrast, saturation and hue per image, in that order; results clamped to [0, 1].

    Brightness, contrast and saturation factors are drawn in [1 - x, 1 + x]; the hue shift in
    [-hue, hue] of a full turn, applied as a rotation of the colour plane in YIQ space. Saturation and hue
    leave 1-channel images unchanged.

    Args:
        brightness: at least 0; 0 leaves brightness unchanged.
        contrast: at least 0.
        saturation: at least 0.
        hue: in [0, 0.5].
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0):
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            check_range(f"ColorJitter.{name}", value, 0)
        check_range("ColorJitter.hue", hue, 0, 0.5)
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def _factor(self, strength: float, images: Tensor) -> Tensor:
        low = max(0.0, 1 - strength)
        return _uniform(len(images), low, 1 + strength, images.device).view(-1, 1, 1, 1)

    @staticmethod
    def _gray(images: Tensor) -> Tensor:
        if images.shape[1] != 3:
            return images.mean(dim=1, keepdim=True)
        r, g, b = images.unbind(dim=1)
        return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)

    def __call__(self, images: Tensor) -> Tensor:
        if self.brightness:
            images = (images * self._factor(self.brightness, images)).clamp(0, 1)
        if self.contrast:
            mean = self._gray(images).mean(dim=(1, 2, 3), keepdim=True)
            images = (mean + (images - mean) * self._factor(self.contrast, images)).clamp(0, 1)
        if images.shape[1] != 3:
            return images
        if self.saturation:
            gray = self._gray(images)
            images = (gray + (images - gray) * self._factor(self.saturation, images)).clamp(0, 1)
        if self.hue:
            images = self._rotate_hue(images, _uniform(len(images), -self.hue, self.hue, images.device))
        return images

    @staticmethod
    def _rotate_hue(images: Tensor, turns: Tensor) -> Tensor:
        """Rotate the chroma (I, Q) of each image by ``turns`` of a full circle; luma Y is kept."""
        to_yiq = torch.tensor(
            [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
            device=images.device,
            dtype=images.dtype,
        )
        angle = 2 * math.pi * turns.to(images.dtype)
        cos, sin = angle.cos(), angle.sin()
        rotate = torch.zeros(len(images), 3, 3, device=images.device, dtype=images.dtype)
        rotate[:, 0, 0] = 1
        rotate[:, 1, 1], rotate[:, 1, 2], rotate[:, 2, 1], rotate[:, 2, 2] = cos, -sin, sin, cos
        matrix = torch.linalg.inv(to_yiq) @ rotate @ to_yiq  # (N, 3, 3), RGB → RGB
        n, c, h, w = images.shape
        return torch.bmm(matrix, images.reshape(n, c, h * w)).view(n, c, h, w).clamp(0, 1)


@AUGMENTATIONS.register
class GaussianNoise(BatchAugmentation):
    """Add Gaussian noise of standard deviation ``std`` to each image with probability ``p``.

    Args:
        std: noise standard deviation on the [0, 1] pixel scale; at least 0.
        p: probability of adding noise to one image, in [0, 1].
        clip: clamp the result to [0, 1].
    """

    def __init__(self, std: float = 0.05, p: float = 1.0, clip: bool = True) -> None:
        check_range("GaussianNoise.std", std, 0)
        check_range("GaussianNoise.p", p, 0, 1)
        self.std, self.p, self.clip = std, p, clip

    def __call__(self, images: Tensor) -> Tensor:
        apply = (torch.rand(len(images), device=images.device) < self.p).to(images.dtype)
        noisy = images + torch.randn_like(images) * (self.std * per_sample(apply))
        return noisy.clamp(0, 1) if self.clip else noisy


def erase_boxes(images: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """(N, 1, H, W) bool mask of one box per image, the boxes given by their (N,) corners and sizes; a box may reach
    past the border, and only its part inside is marked (as CutMix's boxes centred near an edge)."""
    _, _, h, w = images.shape
    rows = torch.arange(h, device=images.device).view(1, h)
    cols = torch.arange(w, device=images.device).view(1, w)
    in_rows = (rows >= top.view(-1, 1)) & (rows < (top + height).view(-1, 1))
    in_cols = (cols >= left.view(-1, 1)) & (cols < (left + width).view(-1, 1))
    return (in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).unsqueeze(1)


@AUGMENTATIONS.register
class RandomErasing(BatchAugmentation):
    """With probability ``p``, fill one random box per image (Zhong et al. 2017) with ``value``.

    Args:
        p: probability of erasing in one image, in [0, 1].
        scale: (min, max) fraction of the image area erased, within [0, 1].
        ratio: (min, max) height / width of the box, drawn log-uniformly; both above 0.
        value: fill on the [0, 1] pixel scale (0 is black; 0.5 mid-gray).
    """

    def __init__(
        self,
        p: float = 0.5,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: float = 0.0,
    ) -> None:
        check_range("RandomErasing.p", p, 0, 1)
        _check_interval("RandomErasing.scale", scale, 0, 1)
        _check_interval("RandomErasing.ratio", ratio, 1e-6)
        check_range("RandomErasing.value", value, 0, 1)
        self.p, self.scale, self.ratio, self.value = p, tuple(scale), tuple(ratio), value

    def __call__(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        device = images.device
        area = _uniform(n, self.scale[0], self.scale[1], device) * (h * w)
        ratio = torch.exp(_uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), device))
        height = torch.sqrt(area * ratio).round().clamp(max=h).long()
        width = torch.sqrt(area / ratio).round().clamp(max=w).long()
        top = (torch.rand(n, device=device) * (h - height + 1)).long()
        left = (torch.rand(n, device=device) * (w - width + 1)).long()
        mask = erase_boxes(images, top, left, height, width)
        mask &= per_sample(torch.rand(n, device=device) < self.p)
        return images.masked_fill(mask, self.value)


@AUGMENTATIONS.register
class Cutout(BatchAugmentation):
    """With probability ``p``, zero a ``size`` × ``size`` square centred anywhere in the image (DeVries 2017).

    Args:
        size: side of the square in pixels; 0 leaves the images unchanged. Near a border part of the
            square falls outside, as in the paper.
        p: probability of cutting out in one image, in [0, 1].
    """

    def __init__(self, size: int = 8, p: float = 1.0) -> None:
        check_range("Cutout.size", size, 0)
        check_range("Cutout.p", p, 0, 1)
        self.size, self.p = size, p

    def __call__(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        device = images.device
        side = torch.full((n,), self.size, device=device)
        top = torch.randint(0, h, (n,), device=device) - self.size // 2
        left = torch.randint(0, w, (n,), device=device) - self.size // 2
        mask = erase_boxes(images, top, left, side, side)
        mask &= per_sample(torch.rand(n, device=device) < self.p)
        return images.masked_fill(mask, 0.0)


def apply_all(augmentations: list[BatchAugmentation] | tuple[BatchAugmentation, ...], images: Tensor) -> Tensor:
    """Apply ``augmentations`` in order to float images in [0, 1]."""
    for augmentation in augmentations:
        images = augmentation(images)
    return images
