"""LeNet-5 (LeCun et al., 1998): two 5×5 conv layers (6, 16 maps) and three linear layers (120, 84)."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from torch import nn

from lightning_cnn.models import blocks
from lightning_cnn.models.base import MODELS, ImageClassifier
from lightning_cnn.models.blocks import ActivationName, flat_features


@MODELS.register
class LeNet5(ImageClassifier):
    """LeNet-5; ``activation: tanh`` with ``pooling: avg`` gives the original, ReLU + max pooling the modern one.

    Args:
        padding: padding of the first conv; 2 keeps 28×28 MNIST digits at the 32×32 field LeNet expects.
        activation: ``relu`` or ``tanh`` (the original); the other shared activations work too.
        pooling: ``max`` or ``avg`` (2×2, stride 2).
    """

    def __init__(
        self,
        padding: int = 2,
        activation: ActivationName = "relu",
        pooling: Literal["max", "avg"] = "max",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        blocks.check_choice("model.pooling", pooling, ["max", "avg"])
        act = partial(blocks.activation, activation)  # validates the name on the first call
        pool = partial(blocks.downsample, pooling, 0)
        channels = self.input_shape[0]
        features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=padding),
            act(),
            pool(),
            nn.Conv2d(6, 16, kernel_size=5),
            act(),
            pool(),
            nn.Flatten(),
        )
        self.net = nn.Sequential(
            features,
            nn.Linear(flat_features(features, self.input_shape), 120),
            act(),
            nn.Linear(120, 84),
            act(),
            nn.Linear(84, self.num_outputs),
        )
