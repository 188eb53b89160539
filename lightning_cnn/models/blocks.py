"""Named building blocks (activation, normalization, down-sampling) shared by the architectures.

Each lookup is the one place that lists the allowed names, so a wrong name fails at construction with
one line naming the option, the value and the choices (as a ``ConfigError``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import torch
from torch import nn

from lightning_cnn.errors import ConfigError

ActivationName = Literal["relu", "leaky_relu", "elu", "sigmoid", "tanh", "silu", "swish", "mish", "gelu"]
NormName = Literal["batch", "group", "layer", "instance", "none"]
PoolingName = Literal["max", "avg", "conv", "none"]
HeadName = Literal["flatten", "gap"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "swish": nn.SiLU,  # swish with beta = 1 is SiLU
    "mish": nn.Mish,
    "gelu": nn.GELU,
}


def check_choice(option: str, value: object, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else a ``ConfigError`` naming ``option`` and the choices."""
    if value not in allowed:
        raise ConfigError(f"{option}: unknown {value!r}; allowed: {', '.join(allowed)}")
    return str(value)


def check_range(option: str, value: float, low: float, high: float, high_inclusive: bool = False) -> None:
    """Fail with one line unless ``low <= value < high`` (or ``<= high``)."""
    upper_ok = value <= high if high_inclusive else value < high
    if not (low <= value and upper_ok):
        bracket = "]" if high_inclusive else ")"
        raise ConfigError(f"{option}: {value!r} is out of range; allowed: [{low}, {high}{bracket}")


def check_widths(option: str, widths: Sequence[int], allow_empty: bool = False) -> list[int]:
    """The widths as a list of positive ints, or a one-line ``ConfigError``."""
    widths = list(widths)
    if (not widths and not allow_empty) or any(not isinstance(w, int) or w < 1 for w in widths):
        empty = "" if allow_empty else "non-empty "
        raise ConfigError(f"{option}: {widths!r} is not valid; allowed: a {empty}list of positive integers")
    return widths


def activation(name: str, option: str = "model.activation") -> nn.Module:
    """A fresh activation module for ``name`` (one of ``ActivationName``)."""
    return ACTIVATIONS[check_choice(option, name, list(ACTIVATIONS))]()


def norm(name: str, channels: int, groups: int = 8, option: str = "model.norm") -> nn.Module:
    """A normalization layer over ``channels`` feature maps; ``none`` gives ``nn.Identity``.

    ``layer`` normalizes over (C, H, W) per image, with a per-channel scale and shift (``GroupNorm(1, C)``),
    so it works for any image size; ``group`` uses ``groups`` groups, which must divide ``channels``.
    """
    name = check_choice(option, name, get_args(NormName))
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        if channels % groups:
            raise ConfigError(
                f"model.norm_groups: {groups} does not divide {channels} channels; allowed: a divisor of every width"
            )
        return nn.GroupNorm(groups, channels)
    if name == "layer":
        return nn.GroupNorm(1, channels)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def downsample(name: str, channels: int, option: str = "model.pooling") -> nn.Module:
    """Halve the feature map: 2×2 max or average pooling, a learned 2×2 stride-2 conv, or ``none`` (keep it)."""
    name = check_choice(option, name, get_args(PoolingName))
    if name == "max":
        return nn.MaxPool2d(2)
    if name == "avg":
        return nn.AvgPool2d(2)
    if name == "conv":
        return nn.Conv2d(channels, channels, kernel_size=2, stride=2)
    return nn.Identity()


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Height or width after a conv or pooling layer (PyTorch's floor formula)."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def flat_features(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Number of features ``features`` produces for one image, so heads fit any input size."""
    with torch.no_grad():
        return features(torch.zeros(1, *input_shape)).flatten(1).shape[1]
