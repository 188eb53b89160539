"""Callbacks the CLI adds to every run."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that keeps its promise not to write during ``fast_dev_run``.

    Lightning's own ``on_train_end`` saves ``last.ckpt`` even in a fast dev run, into a ``checkpoints``
    folder outside any run folder; a smoke test should leave nothing behind.
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        super().on_train_end(trainer, pl_module)
