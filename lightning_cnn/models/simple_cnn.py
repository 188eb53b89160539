"""SimpleCNN: the PyTorch tutorial network, with a head sized from the actual input."""

from __future__ import annotations

from typing import Any

from torch import nn

from lightning_cnn.models.base import MODELS, ImageClassifier
from lightning_cnn.models.blocks import flat_features


@MODELS.register
class SimpleCNN(ImageClassifier):
    """Conv 16 → conv 32 (3×3, padding 1, ReLU, 2×2 max-pool each) → linear to the classes.

    The tutorial hard-codes the flatten size for one input size; here it is measured, so 1- or
    3-channel, 28×28 or 32×32 inputs all work.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        features = nn.Sequential(
            nn.Conv2d(self.input_shape[0], 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.net = nn.Sequential(features, nn.Linear(flat_features(features, self.input_shape), self.num_outputs))
