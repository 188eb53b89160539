"""Patch-whitening initialization of any model's first convolution, from its first training batch."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn

from lightning_cnn.errors import ConfigError
from lightning_cnn.models.whitening import signed_whitening, take_rank_zero


def first_conv(module: nn.Module) -> nn.Conv2d:
    """The first ``Conv2d`` of ``module`` in registration order (the input layer of the sequential networks here)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            return layer
    raise ConfigError(f"WhiteningInit: {type(module).__name__} has no Conv2d to initialize; remove the callback")


class WhiteningInit(L.Callback):
    """Before the first optimizer step, set the model's first conv to whiten the patches of the first training
    batch (augmented and normalized, as the model sees it): its first filters are the patch covariance's
    eigenvectors scaled to unit variance, largest first, then their negations (so that a ReLU keeps both signs),
    while the filters beyond 2 × C × k² keep their initialization. The bias, if any, centres the patches.

    A resumed run keeps its trained weights. Under DDP every process takes rank 0's filters.

    Args:
        eps: added to each eigenvalue: caps the gain of near-constant patch directions.
        freeze: keep the first conv's weights at that init (the speed runs' fixed whitening layer).
    """

    def __init__(self, eps: float = 5e-4, freeze: bool = False) -> None:
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise ConfigError(f"WhiteningInit.eps: {eps!r} is not a positive number; 5e-4 suits normalized images")
        self.eps = float(eps)
        self.freeze = freeze
        self._done = False  # set on the first training batch, so that gradient accumulation whitens once
        self._conv: nn.Conv2d | None = None  # the model's first conv, found once in setup

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        conv = self._conv = first_conv(pl_module)
        if conv.groups != 1 or conv.kernel_size[0] != conv.kernel_size[1]:
            raise ConfigError(
                f"WhiteningInit: the first conv of {type(pl_module).__name__} has kernel {conv.kernel_size} and"
                f" {conv.groups} groups; whitening needs a square kernel and one group"
            )

    @torch.no_grad()
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, *args: Any) -> None:
        if trainer.global_step != 0 or self._done:
            return
        self._done = True
        conv = self._conv
        assert conv is not None, "setup() finds the conv before training"
        images = batch[0]
        if images.shape[1] != conv.in_channels:  # a model that changes its input first: nothing to whiten here
            raise ConfigError(
                f"WhiteningInit: the images have {images.shape[1]} channels but the first conv takes"
                f" {conv.in_channels}; remove the callback for {type(pl_module).__name__}"
            )
        weight, bias = signed_whitening(images, conv.kernel_size[0], self.eps)
        count = min(len(weight), conv.out_channels)  # filters beyond 2 × C × k² keep their initialization
        conv.weight[:count] = weight[:count].to(conv.weight.dtype)
        if conv.bias is not None:
            conv.bias[:count] = bias[:count].to(conv.bias.dtype)
        if trainer.world_size > 1:  # every process starts from rank 0's filters
            take_rank_zero(trainer.strategy, [conv.weight] + ([conv.bias] if conv.bias is not None else []))

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        # no gradient, no step: the optimizers here skip parameters without one (weight decay too)
        if self.freeze and self._conv is not None:
            self._conv.weight.grad = None
