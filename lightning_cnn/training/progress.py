"""How training shows its progress: Lightning's bar on a terminal, one line per epoch anywhere else.

A progress bar redraws itself many times a second; written to a file (a CI job, a SLURM batch script) every
redraw stays, and a 3-epoch MNIST run leaves hundreds of kilobytes of them. ``LineProgress`` writes one line
per epoch and, inside a long epoch, at most one every ``interval`` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar

from lightning_cnn.errors import require


class LineProgress(ProgressBar):
    """One line per training epoch with its metrics and time, and at most one every ``interval`` seconds
    inside an epoch.

    Args:
        interval: the least number of seconds between two lines inside an epoch.
    """

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self.interval = interval
        self._enabled = True
        self._epoch_start = self._last_line = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self.trainer.is_global_zero

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_finished_epoch(trainer)
        self._epoch_start = self._last_line = time.monotonic()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        if not self.is_enabled or now - self._last_line < self.interval:
            return
        self._last_line = now
        total = self.total_train_batches
        of = f"/{int(total)}" if total != float("inf") else ""
        self._line(trainer, trainer.current_epoch, f"batch {batch_idx + 1}{of}", ("train/loss",), now)  # acc: per epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # written once the module's own epoch-end hook (which Lightning calls after the callbacks') logged train/acc
        self._finished = (trainer.current_epoch, time.monotonic())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_finished_epoch(trainer)

    def _write_finished_epoch(self, trainer: L.Trainer) -> None:
        finished, self._finished = getattr(self, "_finished", None), None
        if finished is not None and self.is_enabled:
            self._line(trainer, finished[0], "done", ("train/", "val/"), finished[1])

    def _line(self, trainer: L.Trainer, epoch: int, where: str, prefixes: tuple[str, ...], now: float) -> None:
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(prefixes) and not k.endswith(("_step", "_epoch")) and v.numel() == 1
        }
        shown = "  ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        print(f"epoch {epoch + 1}{epochs} {where}  {shown}  [{now - self._epoch_start:.1f} s]",
              flush=True)  # fmt: skip


def output_is_a_terminal() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


def progress_callback(
    choice: str, interval: float, enabled: bool, configured: Sequence[L.Callback]
) -> ProgressBar | None:
    """The progress display for ``--progress`` (``auto``: Lightning's bar on a terminal, lines elsewhere), or
    ``None`` for Lightning's default, or when the progress bar is off or a progress callback is configured."""
    if not enabled or any(isinstance(callback, ProgressBar) for callback in configured):
        return None
    if choice == "rich":
        require("rich", "progress: rich")
        return RichProgressBar()
    if choice == "lines" or (choice == "auto" and not output_is_a_terminal()):
        return LineProgress(interval)
    return TQDMProgressBar()
