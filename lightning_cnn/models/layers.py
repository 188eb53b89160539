"""Small helpers shared by the architectures."""

from __future__ import annotations

import torch
from torch import nn


def flat_features(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Number of features ``features`` produces for one image, so heads fit any input size."""
    with torch.no_grad():
        return features(torch.zeros(1, *input_shape)).flatten(1).shape[1]
