"""Callbacks the CLI adds to every run."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, StochasticWeightAveraging
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_cnn.training.loggers import log_run_info, run_labels

INTERRUPTED = "interrupted.ckpt"
# the hooks Lightning calls on every callback at every batch
BATCH_HOOKS = (
    "on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step", "on_before_zero_grad", "on_validation_batch_start", "on_validation_batch_end",
    "on_test_batch_start", "on_test_batch_end", "on_predict_batch_start", "on_predict_batch_end",
)  # fmt: skip


def skip_unused_batch_hooks(callbacks: Iterable[L.Callback]) -> None:
    """Set each per-batch hook that a callback leaves as ``Callback``'s no-op to None on the callback.

    Lightning calls a hook only when it is callable, so the no-ops stop costing a profiler context and a call
    per callback at every batch: with the CLI's half-dozen callbacks, about 70 µs of a 5 ms LeNet-5 step
    (see benchmarks/overhead.py). Hooks a callback implements are untouched.
    """
    for callback in callbacks:
        for hook in BATCH_HOOKS:
            if getattr(type(callback), hook, None) is getattr(L.Callback, hook):
                setattr(callback, hook, None)


# the checkpoint paths ModelCheckpoint keeps in its state (with the keys of "best_k_models")
PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``last.ckpt`` really is the last epoch, and that writes nothing in a fast dev run.

    Since Lightning 2.6, ``save_last`` refreshes ``last.ckpt`` only when a top-k checkpoint is saved at
    the same step, so once the monitored metric stops improving ``--ckpt_path last`` would silently
    resume from an older epoch. Lightning's ``on_train_end`` also saves ``last.ckpt`` in a fast dev run,
    into a folder outside any run.
    """

    @property
    def state_key(self) -> str:
        # Lightning asks for it at every hook call of every step; its repr of the settings is built once per setting
        settings = (self.monitor, self.mode, self._every_n_train_steps, self._every_n_epochs, self._train_time_interval)
        if getattr(self, "_state_key_of", None) != settings:
            self._state_key_of, self._state_key = settings, super().state_key
        return self._state_key

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        # without step or time triggers nothing is saved mid-epoch: skip Lightning's per-step checks
        if self._every_n_train_steps < 1 and self._train_time_interval is None and pl_module.automatic_optimization:
            return
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    run_folder: Any = None  # the RunFolder the CLI shares among the loggers: checkpoints go to its checkpoints/

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # the run folder, not the first logger's (an MLflow or W&B logger first would put them in its own store)
        if self.dirpath is None and self.run_folder is not None and not trainer.fast_dev_run:
            self.dirpath = os.fspath(self.run_folder.path / "checkpoints")
        super().setup(trainer, pl_module, stage)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ModelCheckpoint, also in a run folder that was copied or moved since the state was saved: its paths
        are then taken to be in this run's ``checkpoints/`` (where its best file is found), so the best score and
        ``last.ckpt`` carry on; ModelCheckpoint would drop them and start a ``last-v1.ckpt`` beside the old one."""
        saved, here = state_dict.get("dirpath"), self.dirpath
        if saved and here and os.path.normpath(saved) != os.path.normpath(here):

            def moved(path: str) -> str:
                return os.path.join(here, os.path.basename(path)) if path else path

            if os.path.isfile(moved(state_dict.get("best_model_path", ""))):
                state_dict = {
                    **state_dict,
                    "dirpath": here,
                    **{key: moved(state_dict.get(key, "")) for key in PATH_KEYS},
                    "best_k_models": {moved(k): v for k, v in state_dict.get("best_k_models", {}).items()},
                }
        super().load_state_dict(state_dict)

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
            sigterm_advice(trainer, path, os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION))
        )


def sigterm_advice(trainer: L.Trainer, interrupted: str, last: str) -> str:
    """How to go on after SIGTERM, naming only checkpoints that exist: ``--ckpt_path last`` only once an epoch
    ended with a checkpoint, the moment's own checkpoint only if it was written."""
    where = f"SIGTERM in epoch {trainer.current_epoch}, step {trainer.global_step}"
    config = os.path.join(trainer.log_dir or ".", "config.yaml")
    ways = []
    if os.path.isfile(last):
        ways.append(f"from the last finished epoch with --config {config} --ckpt_path last")
    if os.path.isfile(interrupted):
        ways.append(f"from this moment with --config {config} --ckpt_path {interrupted}")
    if not ways:
        return f"{where}: no checkpoint was saved; start the run again without --ckpt_path"
    saved = f": saved {interrupted}" if os.path.isfile(interrupted) else ""
    return f"{where}{saved}. Resume " + ", or ".join(ways)


class ScheduleResumeNote(L.Callback):
    """Print what a resumed run's learning-rate schedule does from here, in one line, and record it as a comment
    at the end of the run's ``config_resumed_N.yaml`` (``config_file``)."""

    def __init__(self, config_file: str | os.PathLike) -> None:
        self.config_file = config_file

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        notes = [note for c in trainer.lr_scheduler_configs if (note := getattr(c.scheduler, "resume_note", None))]
        for note in notes:
            rank_zero_info(note)
        if notes and trainer.is_global_zero and os.path.isfile(self.config_file):
            with open(self.config_file, "a") as f:
                f.writelines(f"# {note}\n" for note in notes)


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


class LogEveryEpoch(L.Callback):
    """On a small training set, with fewer batches an epoch than ``trainer.log_every_n_steps`` (50 by default), log
    every epoch's worth of steps instead: the ``train/loss`` and learning-rate curves would otherwise stay empty."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batches = trainer.num_training_batches
        if isinstance(batches, int) and 0 < batches < trainer.log_every_n_steps:
            trainer.log_every_n_steps = batches


class SavedStochasticWeightAveraging(StochasticWeightAveraging):
    """Lightning's ``StochasticWeightAveraging`` whose averaged weights reach the run's checkpoints.

    Lightning copies the average into the model during one extra forward-only epoch, which it runs only for
    models with batch norm (to recompute their statistics); without batch norm it copies the average at the very
    end of training, after the last checkpoint was saved, so ``last.ckpt``, ``test`` and every tool would get the
    raw weights. Running the extra epoch for every model makes its validation score the average and
    ``last.ckpt`` hold it, at the cost of one pass over the training set without backward.
    """

    @staticmethod
    def pl_module_contains_batch_norm(pl_module: L.LightningModule) -> bool:
        return True  # so that Lightning's extra epoch also runs for models without batch norm
