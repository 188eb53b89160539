"""Lookahead (Zhang et al., 2019) as a callback, so that it wraps whichever optimizer a recipe configures."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor

from lightning_cnn.errors import ConfigError


class Lookahead(L.Callback):
    """Every ``k`` optimizer steps, move the "slow" weights (those of ``k`` steps ago) ``alpha`` of the way towards
    the current ones, and go on training from there: the optimizer explores ahead and the slow weights average
    its path, which steadies large learning rates.

    The slow weights travel in checkpoints, so a resumed run goes on exactly. Under DDP every process does the
    same on identical weights.

    Args:
        k: optimizer steps between two synchronizations (at least 1).
        alpha: how far the slow weights move towards the fast ones, in (0, 1].
    """

    def __init__(self, k: int = 5, alpha: float = 0.5) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"Lookahead.k: {k!r} is not a number of optimizer steps; give an integer of 1 or more")
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and 0 < alpha <= 1):
            raise ConfigError(f"Lookahead.alpha: {alpha!r} is not in (0, 1]; 0.5 is the paper's default")
        self.k = k
        self.alpha = float(alpha)
        self.slow: list[Tensor] | None = None
        self._synced_at = -1  # the global step of the last synchronization

    @staticmethod
    def _params(pl_module: L.LightningModule) -> list[Tensor]:
        return [p for p in pl_module.parameters() if p.requires_grad]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        params = self._params(pl_module)
        if self.slow is None or len(self.slow) != len(params):  # a new run (or a restored state of another model)
            self.slow = [p.detach().clone() for p in params]
        else:  # restored from a checkpoint: onto the weights' device
            self.slow = [s.to(p.device, p.dtype) for s, p in zip(self.slow, params, strict=True)]

    @torch.no_grad()
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step  # optimizer steps so far: with gradient accumulation, not every batch
        if self.slow is None or step == self._synced_at or step % self.k:
            return
        self._synced_at = step
        for slow, fast in zip(self.slow, self._params(pl_module), strict=True):
            slow.lerp_(fast, self.alpha)
            fast.copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        slow = [s.detach().cpu() for s in self.slow] if self.slow is not None else None
        return {"slow": slow, "synced_at": self._synced_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.slow = state_dict.get("slow")
        self._synced_at = state_dict.get("synced_at", -1)
