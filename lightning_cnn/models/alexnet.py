"""AlexNet (Krizhevsky et al., 2012) scaled for 28×28 and 32×32 images instead of upsampling them to 224×224."""

from __future__ import annotations

from typing import Any

from torch import nn

from lightning_cnn.errors import ConfigError
from lightning_cnn.models import blocks
from lightning_cnn.models.base import MODELS, ImageClassifier
from lightning_cnn.models.blocks import ActivationName, flat_features

# the original widths: five conv layers, then two hidden linear layers
CONV_WIDTHS = (64, 192, 384, 256, 256)
LINEAR_WIDTH = 4096


@MODELS.register
class AlexNet(ImageClassifier):
    """Five conv layers (5×5, 5×5, 3×3, 3×3, 3×3) with overlapping 3×3 stride-2 max-pooling after the 1st, 2nd
    and 5th, then three linear layers, the first two behind dropout, as in the original.

    For small images the 11×11 stride-4 first conv becomes 5×5 stride 1, and every width is the original's
    times ``width`` (0.25: convs 16, 48, 96, 64, 64 and linear 1024, 1024).

    Args:
        width: multiplier on the original widths (convs 64, 192, 384, 256, 256; linear 4096, 4096).
        dropout: dropout probability before each of the two hidden linear layers (0.5 in the original).
        activation: non-linearity after every conv and hidden linear layer.
        batch_norm: batch normalization after each conv (the original had local response normalization).
    """

    def __init__(
        self,
        width: float = 0.25,
        dropout: float = 0.5,
        activation: ActivationName = "relu",
        batch_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if width <= 0:
            raise ConfigError(f"model.width: {width} is not valid; allowed: a positive number")
        blocks.check_range("model.dropout", dropout, 0.0, 1.0)
        convs = [max(1, round(c * width)) for c in CONV_WIDTHS]
        linear = max(1, round(LINEAR_WIDTH * width))
        norm = "batch" if batch_norm else "none"

        layers: list[nn.Module] = []
        in_channels = self.input_shape[0]
        for i, out_channels in enumerate(convs):
            kernel_size = 5 if i < 2 else 3
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not batch_norm),
                blocks.norm(norm, out_channels),
                blocks.activation(activation),
            ]
            if i in (0, 1, 4):
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
            in_channels = out_channels
        features = nn.Sequential(*layers, nn.Flatten())
        self.net = nn.Sequential(
            features,
            nn.Dropout(dropout),
            nn.Linear(flat_features(features, self.input_shape), linear),
            blocks.activation(activation),
            nn.Dropout(dropout),
            nn.Linear(linear, linear),
            blocks.activation(activation),
            nn.Linear(linear, self.num_outputs),
        )
