"""FastCIFARNet: a small network in the spirit of the published CIFAR-10 speed runs (Page's "How to train your
ResNet", Jordan's airbench): few layers, wide, trained in few epochs with large batches.

Its pieces, written from those descriptions: a frozen 2×2 patch-whitening first conv (the PCA whitening of
2×2 patches of the training images, and its negation, so 2 × C × 4 output channels), three conv groups
(conv 3×3 → max-pool 2 → batch norm → GELU → conv 3×3 → batch norm → GELU) at 64/256/256 channels, a global
max-pool, a bias-free linear layer scaled by 1/9, and test-time averaging over the image and its mirror. The
rest of the recipe (label smoothing, EMA of the weights, large batches, the schedule) is configuration:
configs/cifar10/fast_net.yaml.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_cnn.errors import ConfigError
from lightning_cnn.models.base import MODELS, ImageClassifier
from lightning_cnn.models.blocks import check_widths
from lightning_cnn.models.whitening import signed_whitening, take_rank_zero

PATCH = 2  # the whitening conv's kernel size
WHITENING_EPS = 5e-4  # added to the patch covariance's eigenvalues: caps the gain of near-constant directions
LOGIT_SCALE = 1 / 9  # the speed runs' output scaling: keeps early logits small, like a lower head learning rate


class PatchWhitening(nn.Module):
    """A 2×2 conv with fixed weights (a buffer, not trained) and a trainable bias; ``fit`` sets the weights to the
    PCA whitening of the patches of a batch.

    Before ``fit`` the filters pick each patch pixel and its negation (whitening for an identity covariance), so
    the network works without data (tests, ``validate`` without a checkpoint). ``fitted`` (a buffer) records that
    ``fit`` ran, and travels with the weights in checkpoints.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        dims = channels * PATCH * PATCH
        identity = torch.eye(dims).view(dims, channels, PATCH, PATCH)
        self.register_buffer("weight", torch.cat([identity, -identity]))
        self.bias = nn.Parameter(torch.zeros(2 * dims))
        self.register_buffer("fitted", torch.tensor(0.0))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias)

    @torch.no_grad()
    def fit(self, images: Tensor) -> None:
        """Whiten the 2×2 patches of ``images`` (N, C, H, W): the patch covariance's eigenvectors scaled by
        1 / sqrt(eigenvalue + eps), and their negations; the bias centres the patches."""
        weight, bias = signed_whitening(images, PATCH, WHITENING_EPS)
        self.weight.copy_(weight)
        self.bias.copy_(bias)
        self.fitted.fill_(1.0)


class ConvGroup(nn.Sequential):
    """conv 3×3 → max-pool 2 → BN → GELU → conv 3×3 → BN → GELU; the BN scales stay 1 (only shifts train).

    Each conv starts as the identity on its first input channels (Dirac), the rest He-initialized, so the
    untrained network passes the whitened image through.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        conv1 = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        norms = [nn.BatchNorm2d(channels, momentum=0.4), nn.BatchNorm2d(channels, momentum=0.4)]
        for conv in (conv1, conv2):
            nn.init.dirac_(conv.weight[: min(conv.in_channels, conv.out_channels)])
        for bn in norms:
            bn.weight.requires_grad_(False)
        super().__init__(conv1, nn.MaxPool2d(2), norms[0], nn.GELU(), conv2, norms[1], nn.GELU())


class FlipAveraging(nn.Module):
    """In eval mode, the mean of the logits of the images and of their mirror images (test-time augmentation);
    in training mode, the wrapped network alone."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return self.net(x)
        return (self.net(x) + self.net(x.flip(-1))) / 2


class Scale(nn.Module):
    """Multiply by a constant."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor


class GlobalMaxPool(nn.Module):
    """The maximum over each feature map, kept as N×C×1×1: ``AdaptiveMaxPool2d(1)`` without its adaptive op, which
    torch 2.11's ONNX exporter cannot translate."""

    def forward(self, x: Tensor) -> Tensor:
        return x.amax(dim=(-2, -1), keepdim=True)


@MODELS.register
class FastCIFARNet(ImageClassifier):
    """Patch-whitening conv → 3 conv groups (64/256/256) → global max-pool → linear × 1/9; mirror averaging at test.

    The whitening is computed from the first training batch, before the first optimizer step, on every process
    alike (rank 0's batch under DDP); a resumed run or a loaded checkpoint keeps the saved one.

    Args:
        widths: channels of the conv groups (1 to 4; each halves the feature map).
        whiten_from_data: fit the whitening conv to the first training batch; ``false`` keeps the fixed
            init (each patch pixel and its negation).
        flip_averaging: in evaluation, average the logits of each image and its horizontal mirror (CIFAR: yes;
            digits are not mirror-symmetric, so ``false`` for MNIST).
    """

    def __init__(
        self,
        widths: list[int] = [64, 256, 256],  # noqa: B006 - read only; jsonargparse shows the default
        whiten_from_data: bool = True,
        flip_averaging: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        widths = check_widths("model.widths", widths)
        if len(widths) > 4:  # each group halves the map: a 32×32 image is 1×1 after four
            raise ConfigError(f"model.widths: {widths} has {len(widths)} groups; allowed: 1 to 4 positive integers")
        self.whiten_from_data = whiten_from_data
        whitening = PatchWhitening(self.input_shape[0])
        layers: list[nn.Module] = [whitening, nn.GELU()]
        in_channels = whitening.weight.shape[0]
        for width in widths:
            layers.append(ConvGroup(in_channels, width))
            in_channels = width
        layers += [GlobalMaxPool(), nn.Flatten(), nn.Linear(in_channels, self.num_outputs, bias=False)]
        body = nn.Sequential(*layers, Scale(LOGIT_SCALE))
        self.net = FlipAveraging(body) if flip_averaging else body

    @property
    def whitening(self) -> PatchWhitening:
        """The first layer."""
        return next(m for m in self.net.modules() if isinstance(m, PatchWhitening))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Fit the whitening to this batch (augmented and normalized, on the device) if it was never fitted."""
        layer = self.whitening
        if not self.whiten_from_data or bool(layer.fitted):
            return
        layer.fit(batch[0])
        if self.trainer.world_size > 1:  # every process uses rank 0's whitening
            take_rank_zero(self.trainer.strategy, [layer.weight, layer.bias])
