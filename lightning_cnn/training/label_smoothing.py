"""A label-smoothing schedule: strong smoothing early, less at the end, as some speed runs train."""

from __future__ import annotations

import math
from typing import Any

import lightning as L

from lightning_cnn.errors import ConfigError


class LabelSmoothingSchedule(L.Callback):
    """Set the model's ``label_smoothing`` at every training batch, linearly from ``start`` at the first optimizer
    step to ``end`` at the last; it replaces ``model.label_smoothing``. It depends on the step alone, so a resumed
    run goes on with the same values.

    Args:
        start: the smoothing at the first step, in [0, 1).
        end: the smoothing at the last step, in [0, 1).
    """

    def __init__(self, start: float = 0.2, end: float = 0.0) -> None:
        for name, value in (("start", start), ("end", end)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value < 1):
                raise ConfigError(f"LabelSmoothingSchedule.{name}: {value!r} is not in [0, 1); 0.1 or 0.2 is usual")
        self.start = float(start)
        self.end = float(end)
        self._total = 0  # the fit's optimizer steps, known once it starts (0: no end known, keep ``start``)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not hasattr(pl_module, "label_smoothing"):
            raise ConfigError(f"LabelSmoothingSchedule: {type(pl_module).__name__} has no label_smoothing to schedule")

    def value_at(self, step: int, total: int) -> float:
        """The smoothing at optimizer step ``step`` of ``total``."""
        progress = min(step / max(total - 1, 1), 1.0)
        return self.start + (self.end - self.start) * progress

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        self._total = int(total) if math.isfinite(total) else 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        pl_module.label_smoothing = self.value_at(step, self._total) if self._total else self.start
