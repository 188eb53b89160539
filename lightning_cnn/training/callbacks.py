"""Callbacks the CLI adds to every run."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_cnn.training.loggers import log_run_info, run_labels

INTERRUPTED = "interrupted.ckpt"


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``last.ckpt`` really is the last epoch, and that writes nothing in a fast dev run.

    Since Lightning 2.6, ``save_last`` refreshes ``last.ckpt`` only when a top-k checkpoint is saved at
    the same step, so once the monitored metric stops improving ``--ckpt_path last`` would silently
    resume from an older epoch. Lightning's ``on_train_end`` also saves ``last.ckpt`` in a fast dev run,
    into a folder outside any run.
    """

    run_folder: Any = None  # the RunFolder the CLI shares among the loggers: checkpoints go to its checkpoints/

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # the run folder, not the first logger's (an MLflow or W&B logger first would put them in its own store)
        if self.dirpath is None and self.run_folder is not None and not trainer.fast_dev_run:
            self.dirpath = os.fspath(self.run_folder.path / "checkpoints")
        super().setup(trainer, pl_module, stage)

    def _save_last_if_missed(self, trainer: L.Trainer) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer) and not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer) and self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        super().on_train_end(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        if not isinstance(exception, SIGTERMException) or trainer.fast_dev_run or trainer.sanity_checking:
            return
        if self.dirpath is None or trainer.global_step == 0:
            return
        path = os.path.join(self.dirpath, INTERRUPTED)
        trainer.save_checkpoint(path)  # every rank takes part; rank 0 writes
        rank_zero_info(
            f"SIGTERM in epoch {trainer.current_epoch}, step {trainer.global_step}: saved {path}."
            f" Resume exactly from the last finished epoch with --ckpt_path last, or from this moment with"
            f" --ckpt_path {path}"
        )


class RunLabels(L.Callback):
    """Logs the run's name and tags (``--run_name``, ``--tags``) to every logger once it starts, after ``setup`` so
    a run stopped by a bad setting logs nothing."""

    def __init__(self) -> None:
        self._done = False

    def _log(self, trainer: L.Trainer) -> None:
        if not self._done and trainer.is_global_zero:
            self._done = True
            log_run_info(trainer, *run_labels(trainer))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer)
