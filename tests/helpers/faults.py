"""Faults that tests inject into real runs through ``--trainer.callbacks+=tests.helpers.faults.<Name>``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L

ROOT = Path(__file__).parents[2]


class SignalAt(L.Callback):
    """Send this process ``signal_name`` (SIGKILL, SIGTERM) at the start of batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int = 1, batch: int = 3, signal_name: str = "SIGKILL") -> None:
        self.epoch, self.batch, self.signal = epoch, batch, getattr(signal, signal_name)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signal)


class LearningRateAt(L.Callback):
    """Set every learning rate to ``lr`` from epoch ``epoch`` on: a way to make training diverge on purpose."""

    def __init__(self, epoch: int = 1, lr: float = 1e30) -> None:
        self.epoch, self.lr = epoch, lr

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.current_epoch >= self.epoch:
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = self.lr


class SignalInRun(L.Callback):
    """Send this process ``signal_name`` at the first training batch of run folder ``version_N``: kills a
    multi-run tool (kfold, search) part-way through. With ``once``, a file it creates first, only once: a resumed
    tool that claims ``version_N`` again goes on."""

    def __init__(self, version: int = 2, signal_name: str = "SIGKILL", once: str | None = None) -> None:
        self.version, self.signal, self.once = version, getattr(signal, signal_name), once

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.logger is not None and trainer.logger.version == self.version and batch_idx == 0:
            if self.once is not None:
                if os.path.exists(self.once):
                    return
                open(self.once, "w").close()
            os.kill(os.getpid(), self.signal)


def run_in_child(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m lightning_cnn ARGS`` in a child process, which the faults above can kill (a test process must
    survive it); ``tests.helpers.faults`` is importable there."""
    command = [sys.executable, "-m", "lightning_cnn", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout)


def start_in_child(*args: object) -> subprocess.Popen[str]:
    """``python -m lightning_cnn ARGS`` started in a child process that runs beside the test (and other children)."""
    command = [sys.executable, "-m", "lightning_cnn", *map(str, args)]
    return subprocess.Popen(
        command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


class FillDiskAt(L.Callback):
    """Fill the file system of ``path`` (a small tmpfs) at the start of epoch ``epoch``: a disk that runs full
    part-way through a run."""

    def __init__(self, path: str, epoch: int = 1) -> None:
        self.path, self.epoch = path, epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            fill_disk(Path(self.path))


def fill_disk(path: Path) -> None:
    """Write zeros to ``path`` until its file system has no space left."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
