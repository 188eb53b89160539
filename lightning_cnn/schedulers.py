"""Learning-rate schedules that need the run's length, and the rules for stepping any scheduler.

The total number of optimizer steps comes from the trainer (``estimated_stepping_batches``), never from
the user: a schedule stays right when epochs, batch size, devices or gradient accumulation change.

Resumed with another length (``--ckpt_path last --trainer.max_epochs 6``), such a schedule re-derives its length
and goes on by one rule (``resume_map``):

- the planned curve had not ended: the rest of it is stretched (or compressed) over the steps left, so the
  learning rate goes on from where it was, without a jump, and reaches the floor at the new last step;
- the planned curve had ended (the run finished and is extended): the added steps follow the curve a run of the
  new length would have followed at those steps, ending at the floor at the new last step (a warm restart: the
  curve of a finished run sits at its floor, where added steps would learn nothing).

The same length resumes exactly as before. The rule is printed in one line at the resume
(``resume_note``) and recorded in the run's ``config_resumed_N.yaml``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CyclicLR, LambdaLR, LRScheduler
from torch.optim.lr_scheduler import OneCycleLR as TorchOneCycleLR

from lightning_cnn.errors import ConfigError
from lightning_cnn.internals import scheduled_lrs, set_last_lrs


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
        # the curve is planned over `plan_steps` steps; step t of this run is step (t - plan_b) / plan_a of the
        # plan (the identity until a resume with another length fits the plan to the new one)
        self.plan_steps, self.plan_a, self.plan_b = total_steps, 1.0, 0.0
        super().__init__(optimizer, self.factor, last_epoch)

    def factor(self, step: int) -> float:
        """The multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
        step = (step - self.plan_b) / self.plan_a
        if step < self.warmup_steps:
            return self.warmup_start_ratio + (1 - self.warmup_start_ratio) * step / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.plan_steps - 1 - self.warmup_steps))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def state_dict(self) -> dict[str, Any]:
        # the factor is a bound method: rebuilt from the constructor, not pickled
        return {k: v for k, v in super().state_dict().items() if k not in ("lr_lambdas", "resume_note")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The saved state, fitted to this run's length (``resume_map``) when that changed."""
        total = self.total_steps
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "lr_lambdas"})
        self.__dict__.setdefault("plan_steps", state_dict["total_steps"])  # checkpoints from before the rule
        fitted = resume_map(self.last_epoch, self.total_steps, total)
        if fitted is not None:
            a, b = fitted
            self.plan_a, self.plan_b = a * self.plan_a, a * self.plan_b + b
            self.total_steps = total
            _resumed(self, state_dict["total_steps"], total)


class ResumableOneCycleLR(TorchOneCycleLR):
    """torch's one-cycle schedule, resumable with another length (``resume_map``); ``build_scheduler`` gives every
    configured ``torch.optim.lr_scheduler.OneCycleLR`` this class (torch's stops with "Tried to step N times")."""

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "resume_note"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The saved state, its phases fitted to this run's length when that changed."""
        total = self.total_steps
        super().load_state_dict(state_dict)
        fitted = resume_map(self.last_epoch, self.total_steps, total)
        if fitted is not None:
            a, b = fitted
            phases = self._schedule_phases
            self._schedule_phases = [{**phase, "end_step": a * phase["end_step"] + b} for phase in phases]
            self.total_steps = total
            _resumed(self, state_dict["total_steps"], total)


def resume_map(step: int, old_total: int, new_total: int) -> tuple[float, float] | None:
    """How a schedule planned over ``old_total`` steps and resumed at step ``step`` fits ``new_total`` steps: the
    linear map ``new = a * old + b`` of its steps (see the module's docstring), or None when it stays as it was
    (the same length, or nothing left to train)."""
    if new_total == old_total or new_total <= step or old_total < 2:
        return None
    if step < old_total - 1:  # the curve goes on from `step`: its rest is stretched to the new last step
        a = (new_total - 1 - step) / (old_total - 1 - step)
        return a, step * (1 - a)
    return (new_total - 1) / (old_total - 1), 0.0  # it had ended: the curve of a run of the new length


def _resumed(scheduler: LRScheduler, old_total: int, new_total: int) -> None:
    """Set the optimizer's learning rates for the resumed step by the fitted schedule (the optimizer was restored
    with the old schedule's), and the one line that says what the schedule does from here."""
    lrs = scheduled_lrs(scheduler)
    for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    set_last_lrs(scheduler, lrs)
    step, name = scheduler.last_epoch, type(scheduler).__name__
    if step < old_total - 1:
        what = f"the rest of its curve is stretched over the {new_total - step} steps left"
    else:
        what = f"its curve had ended; the added steps follow the curve of a {new_total}-step run"
    scheduler.resume_note = (  # type: ignore[attr-defined]
        f"lr schedule {name}: planned for {old_total} steps, the resumed run has {new_total}; resuming at step"
        f" {step} with lr {float(lrs[0]):.4g}: {what}, down to its floor at step {new_total - 1}"
    )


STEP_SCHEDULERS = (WarmupCosineLR, TorchOneCycleLR, CyclicLR)


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
        scheduler = factory(optimizer, total_steps=total_steps)
    else:
        scheduler = factory(optimizer)
    if type(scheduler) is TorchOneCycleLR:  # the same schedule, resumable with another length
        scheduler.__class__ = ResumableOneCycleLR
    return scheduler


def scheduler_class(factory: Callable[..., LRScheduler] | None) -> type | None:
    """The class a configured scheduler builds (a class, a ``functools.partial`` of one, or jsonargparse's)."""
    if factory is None or isinstance(factory, type):
        return factory
    candidates = [getattr(factory, "func", None), *getattr(factory, "args", ())]
    return next((c for c in reversed(candidates) if isinstance(c, type)), None)


def default_interval(scheduler: LRScheduler | Any) -> str:
    """``step`` for schedules defined over optimizer steps (warmup-cosine, one-cycle, cyclic), else ``epoch``."""
    return "step" if isinstance(scheduler, STEP_SCHEDULERS) else "epoch"
