"""Learning-rate schedules that need the run's length, and the rules for stepping any scheduler.

The total number of optimizer steps comes from the trainer (``estimated_stepping_batches``), never from
the user: a schedule stays right when epochs, batch size, devices or gradient accumulation change.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CyclicLR, LambdaLR, LRScheduler, OneCycleLR

from lightning_cnn.errors import ConfigError


class WarmupCosineLR(LambdaLR):
    """Linear warmup to the optimizer's LR, then cosine decay to ``min_lr_ratio`` × LR, stepped every batch.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        warmup_steps: steps of linear warmup: a count, or a fraction (< 1) of the total steps.
        min_lr_ratio: the final learning rate as a fraction of the peak.
        warmup_start_ratio: the first step's learning rate as a fraction of the peak.
        total_steps: every optimizer step of the run; filled in from the trainer, leave it unset.
    """

    interval = "step"

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int | float = 0.05,
        min_lr_ratio: float = 0.0,
        warmup_start_ratio: float = 0.0,
        total_steps: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if total_steps is None or total_steps < 1:
            raise ConfigError(f"WarmupCosineLR needs total_steps >= 1 (the trainer fills it in), got {total_steps}")
        if warmup_steps < 0 or not 0 <= min_lr_ratio <= 1 or not 0 <= warmup_start_ratio <= 1:
            raise ConfigError(
                "model.lr_scheduler: WarmupCosineLR needs warmup_steps >= 0 and min_lr_ratio, warmup_start_ratio"
                f" in [0, 1]; got {warmup_steps}, {min_lr_ratio}, {warmup_start_ratio}"
            )
        warmup = round(warmup_steps * total_steps) if isinstance(warmup_steps, float) else warmup_steps
        if warmup >= total_steps:
            raise ConfigError(
                f"model.lr_scheduler.warmup_steps={warmup_steps} is not below the {total_steps} total steps"
            )
        self.warmup_steps, self.total_steps = warmup, total_steps
        self.min_lr_ratio, self.warmup_start_ratio = min_lr_ratio, warmup_start_ratio
        super().__init__(optimizer, self.factor, last_epoch)

    def factor(self, step: int) -> float:
        """The multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.warmup_start_ratio + (1 - self.warmup_start_ratio) * step / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - 1 - self.warmup_steps))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def state_dict(self) -> dict[str, Any]:
        # the factor is a bound method: rebuilt from the constructor, not pickled
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "lr_lambdas"})


STEP_SCHEDULERS = (WarmupCosineLR, OneCycleLR, CyclicLR)


def build_scheduler(factory: Callable[..., LRScheduler], optimizer: Optimizer, total_steps: int) -> LRScheduler:
    """Call a configured scheduler, passing ``total_steps`` when its class takes it and the config left it unset."""
    keywords = getattr(factory, "keywords", None) or {}
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    unset_in_config = "total_steps" in keywords and keywords["total_steps"] is None
    unset_in_signature = "total_steps" in parameters and parameters["total_steps"].default is None
    if unset_in_config or (unset_in_signature and "total_steps" not in keywords):
        return factory(optimizer, total_steps=total_steps)
    return factory(optimizer)


def scheduler_class(factory: Callable[..., LRScheduler] | None) -> type | None:
    """The class a configured scheduler builds (a class, a ``functools.partial`` of one, or jsonargparse's)."""
    if factory is None or isinstance(factory, type):
        return factory
    candidates = [getattr(factory, "func", None), *getattr(factory, "args", ())]
    return next((c for c in reversed(candidates) if isinstance(c, type)), None)


def default_interval(scheduler: LRScheduler | Any) -> str:
    """``step`` for schedules defined over optimizer steps (warmup-cosine, one-cycle, cyclic), else ``epoch``."""
    return "step" if isinstance(scheduler, STEP_SCHEDULERS) else "epoch"
