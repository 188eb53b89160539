"""MLP: the classic fully connected baseline, flatten → hidden layers → classes."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Any

from torch import nn

from lightning_cnn.models import blocks
from lightning_cnn.models.base import MODELS, ImageClassifier
from lightning_cnn.models.blocks import ActivationName


@MODELS.register
class MLP(ImageClassifier):
    """Flatten the image, then ``hidden`` linear layers, each followed by the activation, then the classes.

    Args:
        hidden: widths of the hidden layers; ``[]`` gives multinomial logistic regression.
        activation: non-linearity after each hidden layer.
        dropout: dropout probability after each hidden layer (0 turns it off).
    """

    def __init__(
        self,
        hidden: Sequence[int] = (128,),
        activation: ActivationName = "relu",
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        widths = blocks.check_widths("model.hidden", hidden, allow_empty=True)
        blocks.check_range("model.dropout", dropout, 0.0, 1.0)
        layers: list[nn.Module] = [nn.Flatten()]
        features = prod(self.input_shape)
        for width in widths:
            layers += [nn.Linear(features, width), blocks.activation(activation)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            features = width
        layers.append(nn.Linear(features, self.num_outputs))
        self.net = nn.Sequential(*layers)
