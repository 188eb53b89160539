"""Patch whitening: the PCA whitening of the k×k patches of an image batch, as conv filters.

The published speed runs (Page's "How to train your ResNet", Jordan's airbench) start from a first conv whose
filters whiten the image's patches: the network sees decorrelated inputs of unit variance from the first step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_VALUES = 1 << 24  # patch values (patches × C·k²) the covariance is estimated from: 64 MB in float32


@torch.no_grad()
def whitening_filters(images: Tensor, kernel_size: int, eps: float) -> tuple[Tensor, Tensor]:
    """(filters, mean) of the ``kernel_size``² patches of ``images`` (N, C, H, W): ``filters`` (C·k², C, k, k) are
    the patch covariance's eigenvectors, largest eigenvalue first, each scaled by 1 / sqrt(eigenvalue + ``eps``),
    and ``mean`` (C·k²) is the mean patch, which a bias of ``-(filters @ mean)`` removes."""
    with torch.autocast(images.device.type, enabled=False):
        channels, height, width = images.shape[1:]
        dims, positions = channels * kernel_size**2, (height - kernel_size + 1) * (width - kernel_size + 1)
        images = images[: max(1, MAX_VALUES // (dims * positions))]  # the first images of a large batch
        patches = F.unfold(images.float(), kernel_size).transpose(1, 2).reshape(-1, dims)
        mean = patches.mean(0)
        centred = patches - mean
        covariance = centred.T @ centred / len(centred)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = eigenvectors.T.flip(0) / (eigenvalues.flip(0).clamp(min=0) + eps).sqrt()[:, None]
    return filters.view(-1, channels, kernel_size, kernel_size), mean


@torch.no_grad()
def signed_whitening(images: Tensor, kernel_size: int, eps: float) -> tuple[Tensor, Tensor]:
    """(weight, bias) of a conv whose 2 × C·k² filters are ``whitening_filters`` and their negations (so that a ReLU
    keeps both signs of each direction), and whose bias centres the patches."""
    filters, mean = whitening_filters(images, kernel_size, eps)
    weight = torch.cat([filters, -filters])
    return weight, -(weight.flatten(1) @ mean)


@torch.no_grad()
def take_rank_zero(strategy: Any, tensors: list[Tensor]) -> None:
    """Overwrite ``tensors`` in place with rank 0's values (a Lightning strategy's broadcast), so that every process
    starts from the same whitening."""
    values = strategy.broadcast([t.detach().cpu() for t in tensors], src=0)
    for tensor, value in zip(tensors, values, strict=True):
        tensor.copy_(value)
