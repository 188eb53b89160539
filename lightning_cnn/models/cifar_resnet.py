"""ResNet-20/32/44/56: the CIFAR ResNets of He et al. 2016 ("Deep Residual Learning for Image Recognition", §4.2).

A 3×3 conv to 16 channels, then three stages of n basic blocks (two 3×3 convs with batch norm) at 16, 32 and 64
channels, the second and third stage halving the feature map in their first block, global average pooling and
one linear layer: 6n + 2 weighted layers. The paper's CIFAR networks use shortcut option A (identity shortcuts,
sub-sampled and zero-padded where the shape changes, so no shortcut has parameters); option B (a 1×1 projection
with batch norm where the shape changes) is available too.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch.nn.functional as F
from torch import Tensor, nn

from lightning_cnn.errors import ConfigError
from lightning_cnn.models.base import MODELS, ImageClassifier
from lightning_cnn.models.blocks import check_choice

Shortcut = Literal["A", "B"]
STAGE_WIDTHS = (16, 32, 64)


class ZeroPadShortcut(nn.Module):
    """Option A: the identity, sub-sampled by ``stride`` and zero-padded to ``channels`` (no parameters)."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = channels - in_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class BasicBlock(nn.Module):
    """conv 3×3 → BN → ReLU → conv 3×3 → BN, plus the shortcut, → ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = (
                ZeroPadShortcut(in_channels, channels, stride)
                if shortcut == "A"
                else nn.Sequential(
                    nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
                )
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def cifar_resnet(depth: int, channels: int, num_classes: int, shortcut: str = "A") -> nn.Sequential:
    """The 6n+2-layer CIFAR ResNet for ``depth`` = 6n + 2, as ``nn.Sequential`` (stem, stages, head).

    Convs get He (fan-out) initialization, as in the paper; batch norms start at scale 1, shift 0.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"model.depth: {depth} is not 6n + 2; allowed: 8, 14, 20, 32, 44, 56, 110, ...")
    check_choice("model.shortcut", shortcut, get_args(Shortcut))
    blocks_per_stage = (depth - 2) // 6
    layers: list[nn.Module] = [
        nn.Conv2d(channels, STAGE_WIDTHS[0], 3, padding=1, bias=False),
        nn.BatchNorm2d(STAGE_WIDTHS[0]),
        nn.ReLU(),
    ]
    in_channels = STAGE_WIDTHS[0]
    for stage, width in enumerate(STAGE_WIDTHS):
        blocks = [
            BasicBlock(in_channels if i == 0 else width, width, 2 if stage > 0 and i == 0 else 1, shortcut)
            for i in range(blocks_per_stage)
        ]
        layers.append(nn.Sequential(*blocks))
        in_channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes)]
    net = nn.Sequential(*layers)
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return net


class CIFARResNet(ImageClassifier):
    """The CIFAR ResNet of any depth 6n + 2 (e.g. 110); ``ResNet20`` ... ``ResNet56`` fix the paper's depths.

    Args:
        depth: number of weighted layers, 6n + 2 (n basic blocks per stage).
        shortcut: ``A`` (the paper's CIFAR choice: zero-padded identity, no parameters) or ``B`` (1×1 projection
            with batch norm where the shape changes).
    """

    def __init__(self, depth: int = 20, shortcut: Shortcut = "A", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = cifar_resnet(depth, self.input_shape[0], self.num_outputs, shortcut)


@MODELS.register
class ResNet20(CIFARResNet):
    """ResNet-20 for CIFAR (He et al. 2016): 3 stages of 3 basic blocks at 16/32/64 channels, 0.27 M parameters.

    Args:
        shortcut: ``A`` (zero-padded identity, the paper's CIFAR choice) or ``B`` (1×1 projection).
    """

    def __init__(self, shortcut: Shortcut = "A", **kwargs: Any) -> None:
        super().__init__(depth=20, shortcut=shortcut, **kwargs)


@MODELS.register
class ResNet32(CIFARResNet):
    """ResNet-32 for CIFAR (He et al. 2016): 3 stages of 5 basic blocks at 16/32/64 channels, 0.46 M parameters.

    Args:
        shortcut: ``A`` (zero-padded identity, the paper's CIFAR choice) or ``B`` (1×1 projection).
    """

    def __init__(self, shortcut: Shortcut = "A", **kwargs: Any) -> None:
        super().__init__(depth=32, shortcut=shortcut, **kwargs)


@MODELS.register
class ResNet44(CIFARResNet):
    """ResNet-44 for CIFAR (He et al. 2016): 3 stages of 7 basic blocks at 16/32/64 channels, 0.66 M parameters.

    Args:
        shortcut: ``A`` (zero-padded identity, the paper's CIFAR choice) or ``B`` (1×1 projection).
    """

    def __init__(self, shortcut: Shortcut = "A", **kwargs: Any) -> None:
        super().__init__(depth=44, shortcut=shortcut, **kwargs)


@MODELS.register
class ResNet56(CIFARResNet):
    """ResNet-56 for CIFAR (He et al. 2016): 3 stages of 9 basic blocks at 16/32/64 channels, 0.85 M parameters.

    Args:
        shortcut: ``A`` (zero-padded identity, the paper's CIFAR choice) or ``B`` (1×1 projection).
    """

    def __init__(self, shortcut: Shortcut = "A", **kwargs: Any) -> None:
        super().__init__(depth=56, shortcut=shortcut, **kwargs)
