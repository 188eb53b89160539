"""ConvNet: conv 32 → pool → conv 64 → pool → linear 128 → classes, every part a switch.

The building blocks (activation, normalization, pooling, head, dilation, groups, dropout) come from
``blocks``, so one class covers the plain, dropout and batch-norm variants and the experiments beyond them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

from torch import nn

from lightning_cnn.errors import ConfigError
from lightning_cnn.models import blocks
from lightning_cnn.models.base import MODELS, ImageClassifier
from lightning_cnn.models.blocks import ActivationName, HeadName, NormName, PoolingName, flat_features


@MODELS.register
class ConvNet(ImageClassifier):
    """Conv stages (conv → norm → activation → spatial dropout → pool), then linear layers to the classes.

    Args:
        channels: output channels of each conv stage; every stage halves the image (unless ``pooling: none``).
        hidden: widths of the linear layers between the conv stages and the classes.
        kernel_size: size of every conv kernel; padding keeps the size ("same") for odd kernels.
        activation: non-linearity after each conv and hidden linear layer.
        pooling: down-sampling after each stage: ``max``/``avg`` (2×2), ``conv`` (a learned 2×2
            stride-2 conv) or ``none``.
        head: ``flatten`` the last feature maps, or ``gap`` (global average pooling: one value per channel).
        batch_norm: batch normalization after each conv; a shorthand for ``norm: batch``.
        norm: normalization after each conv: ``batch``, ``group``, ``layer``, ``instance`` or ``none``;
            ``auto`` (the default) is ``batch`` if ``batch_norm`` else ``none``.
        norm_groups: groups of ``norm: group``; must divide every width in ``channels``.
        dropout: dropout probability before the last linear layer.
        spatial_dropout: probability of dropping whole feature maps (``Dropout2d``) after each stage.
        dilation: dilation of every conv (a wider field of view at the same cost).
        groups: grouped convolutions in every conv but the first; must divide every width in ``channels``.
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 64),
        hidden: Sequence[int] = (128,),
        kernel_size: int = 3,
        activation: ActivationName = "relu",
        pooling: PoolingName = "max",
        head: HeadName = "flatten",
        batch_norm: bool = False,
        norm: Literal["auto", NormName] = "auto",
        norm_groups: int = 8,
        dropout: float = 0.0,
        spatial_dropout: float = 0.0,
        dilation: int = 1,
        groups: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        widths = blocks.check_widths("model.channels", channels)
        hidden_widths = blocks.check_widths("model.hidden", hidden, allow_empty=True)
        norm = self._norm_name(batch_norm, norm)
        blocks.check_choice("model.head", head, get_args(HeadName))
        blocks.check_choice("model.pooling", pooling, get_args(PoolingName))
        blocks.check_range("model.dropout", dropout, 0.0, 1.0)
        blocks.check_range("model.spatial_dropout", spatial_dropout, 0.0, 1.0)
        for option, value in (("kernel_size", kernel_size), ("dilation", dilation), ("groups", groups)):
            if value < 1:
                raise ConfigError(f"model.{option}: {value} is not valid; allowed: a positive integer")
        if any(width % groups for width in widths):
            raise ConfigError(f"model.groups: {groups} does not divide every width in {widths}; allowed: a divisor")
        self._check_size(widths, kernel_size, dilation, pooling)

        padding = dilation * (kernel_size - 1) // 2
        stages: list[nn.Module] = []
        in_channels = self.input_shape[0]
        for i, width in enumerate(widths):
            conv = nn.Conv2d(
                in_channels, width, kernel_size, padding=padding, dilation=dilation,
                groups=1 if i == 0 else groups, bias=norm == "none",
            )  # fmt: skip
            stage = [conv, blocks.norm(norm, width, norm_groups), blocks.activation(activation)]
            if spatial_dropout:
                stage.append(nn.Dropout2d(spatial_dropout))
            stage.append(blocks.downsample(pooling, width))
            stages.append(nn.Sequential(*stage))
            in_channels = width
        pool_head = [nn.AdaptiveAvgPool2d(1)] if head == "gap" else []
        features = nn.Sequential(*stages, *pool_head, nn.Flatten())

        layers: list[nn.Module] = [features]
        size = flat_features(features, self.input_shape)
        for width in hidden_widths:
            layers += [nn.Linear(size, width), blocks.activation(activation)]
            size = width
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(size, self.num_outputs))
        self.net = nn.Sequential(*layers)

    @staticmethod
    def _norm_name(batch_norm: bool, norm: str) -> str:
        """Resolve the ``batch_norm`` shorthand against ``norm``; a contradiction is a ``ConfigError``."""
        norm = blocks.check_choice("model.norm", norm, ["auto", *get_args(NormName)])
        if norm == "auto":
            return "batch" if batch_norm else "none"
        if batch_norm and norm != "batch":
            raise ConfigError(f"model.batch_norm: true contradicts norm: {norm}; allowed: set only one of them")
        return norm

    def _check_size(self, widths: list[int], kernel_size: int, dilation: int, pooling: str) -> None:
        """Fail with one line when the stages shrink the input below 1×1."""
        height, width = self.input_shape[1:]
        padding = dilation * (kernel_size - 1) // 2
        for stage in range(1, len(widths) + 1):
            height, width = (blocks.conv_output_size(s, kernel_size, 1, padding, dilation) for s in (height, width))
            if pooling != "none":
                height, width = (blocks.conv_output_size(s, 2, 2) for s in (height, width))
            if height < 1 or width < 1:
                shape = "×".join(map(str, self.input_shape[1:]))
                allowed = max(stage - 1, 0)
                raise ConfigError(
                    f"model.channels: {len(widths)} stages {widths} shrink a {shape} input below 1×1 at stage"
                    f" {stage}; allowed: at most {allowed} stages for this input (or pooling: none)"
                )
