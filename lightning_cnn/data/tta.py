"""Test-time augmentation: the views of an image that a recipe's training augmentation implies, and the softmax
probabilities of a model averaged over them.

A model trained with ``HorizontalFlip`` has learnt mirrored images as the same class, and one trained with
``RandomCrop`` shifted ones; averaging its predictions over those views of a test image smooths out its errors. The
views follow the training augmentation and nothing else: the image itself, its mirror image when the recipe flips,
and shifts of half the crop's padding left, right, up and down (the crop's zero fill around them) when it crops —
each shift also mirrored when it flips. A recipe with neither has no views to average: ``tta_views`` refuses it.

``test --tta true``, ``predict-files --tta true`` and ``ensemble --tta true`` all take their views from here.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lightning_cnn.data.augment import AUGMENTATIONS, BatchAugmentation, HorizontalFlip, RandomCrop
from lightning_cnn.errors import ConfigError


@dataclass(frozen=True)
class View:
    """One deterministic view of an image: shifted by ``dy`` rows down and ``dx`` columns right (the pixels moved
    in filled with black, as ``RandomCrop``'s zero padding), then mirrored left-right when ``flip``."""

    flip: bool = False
    dy: int = 0
    dx: int = 0

    @property
    def name(self) -> str:
        parts = [f"shift({self.dy:+d},{self.dx:+d})"] if self.dy or self.dx else []
        parts += ["flip"] if self.flip else []
        return "+".join(parts) or "identity"

    def __call__(self, images: Tensor, fill: Tensor | None = None) -> Tensor:
        """This view of (N, C, H, W) ``images``; ``fill`` is the value of a black pixel per channel (C,) in the
        images' scale (for normalized images, ``-mean / std``), 0 when not given."""
        out = images
        if self.dy or self.dx:
            out = images.roll((self.dy, self.dx), dims=(2, 3))
            h, w = images.shape[2:]
            rows = torch.arange(h, device=images.device).view(h, 1)
            cols = torch.arange(w, device=images.device).view(1, w)
            # the pixels that rolled round from the other border are the ones the shift moved in
            outside = (rows < self.dy) | (rows >= h + self.dy) | (cols < self.dx) | (cols >= w + self.dx)
            value = torch.zeros(1, images.shape[1], 1, 1, dtype=images.dtype, device=images.device)
            if fill is not None:
                value = fill.to(images.device, images.dtype).view(1, -1, 1, 1).expand_as(value)
            out = torch.where(outside, value, out)
        return out.flip(3) if self.flip else out


AugmentationRecord = BatchAugmentation | str | dict[str, Any]


def rebuilt(record: AugmentationRecord) -> BatchAugmentation | None:
    """The augmentation of a configured object, of its record in a checkpoint (``RandomCrop(padding=4)``, as a data
    module saves them) or of a ``{class_path, init_args}`` mapping; None for one that is not a registered
    augmentation with plain literal arguments (nothing is evaluated but literals)."""
    if isinstance(record, BatchAugmentation):
        return record
    if isinstance(record, dict):
        name = str(record.get("class_path", "")).rsplit(".", 1)[-1]
        kwargs = dict(record.get("init_args") or {})
    else:
        try:
            call = ast.parse(str(record).strip(), mode="eval").body
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.args:
                return None
            name = call.func.id
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg is not None}
        except (SyntaxError, ValueError):
            return None
    cls = AUGMENTATIONS.get(name)
    if cls is None:
        return None
    try:
        return cls(**kwargs)
    except (ConfigError, TypeError, ValueError):
        return None


def views_from_augment(augment: Sequence[AugmentationRecord] | None) -> list[View]:
    """The views a training augmentation implies, the image itself first: its mirror image with a ``HorizontalFlip``
    (p above 0), shifts by half the padding (at least 1 pixel) along each axis with a ``RandomCrop`` (padding above
    0), and both together. Other augmentations add none."""
    flips, shift = False, 0
    for augmentation in (rebuilt(record) for record in augment or ()):
        if isinstance(augmentation, HorizontalFlip) and augmentation.p > 0:
            flips = True
        elif isinstance(augmentation, RandomCrop) and augmentation.padding > 0:
            shift = max(shift, max(1, round(augmentation.padding / 2)))
    offsets = [(0, 0)]
    if shift:
        offsets += [(shift, 0), (-shift, 0), (0, shift), (0, -shift)]
    return [View(flip, dy, dx) for flip in ((False, True) if flips else (False,)) for dy, dx in offsets]


def tta_views(augment: Sequence[AugmentationRecord] | None, source: str) -> list[View]:
    """``views_from_augment``, refused with a ConfigError when the augmentation (of ``source``: ``data.augment``, a
    checkpoint) gives no view besides the image itself."""
    views = views_from_augment(augment)
    if len(views) > 1:
        return views
    shown = ", ".join(str(a.get("class_path")) if isinstance(a, dict) else str(a) for a in augment or ())
    raise ConfigError(
        f"tta: the training augmentation of {source} has no HorizontalFlip and no RandomCrop ([{shown}]), so there are"
        " no views to average (the model never learnt mirrored or shifted images as the same class); leave --tta"
        " false, or train with those in data.augment"
    )


def black(mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """The value per channel (C,) of a black pixel after normalization with ``mean`` and ``std``: the fill of a shift
    of normalized images."""
    return -torch.tensor(mean, dtype=torch.float32) / torch.tensor(std, dtype=torch.float32)


def average_probabilities(
    logits_of: Callable[[Tensor], Tensor],
    images: Tensor,
    views: Sequence[View],
    fill: Tensor | None = None,
    logits: Tensor | None = None,
) -> Tensor:
    """The softmax of ``logits_of`` (a model) averaged over ``views`` of ``images``, float32 (N, classes): one forward
    pass per view, but none for the image itself when its ``logits`` are given (a test step has them already).
    ``fill`` is a black pixel in the images' scale (see ``View``)."""
    if not views:
        raise ValueError("average_probabilities needs at least one view")
    total: Tensor | None = None
    for view in views:
        view_logits = logits if logits is not None and view == View() else logits_of(view(images, fill))
        probabilities = view_logits.float().softmax(dim=1)
        total = probabilities if total is None else total + probabilities
    assert total is not None
    return total / len(views)
