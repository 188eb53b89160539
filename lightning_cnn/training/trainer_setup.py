"""What the Trainer of a command is built with, besides the configured options: its loggers placed in one run
folder, our callbacks (run labels, a predictions CSV, logging every epoch, the progress display) and the
checkpoint plugin that writes atomically and records each file's SHA-256.

Every run has its own ``version_N`` folder, with or without a logger; a resumed run goes on in its own folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from lightning_cnn.run_folder import RunFolder, after_failure, config_name, release_runs
from lightning_cnn.training.callbacks import LogEveryEpoch, RunCheckpoint, RunLabels, ScheduleResumeNote
from lightning_cnn.training.checkpoint_io import AtomicCheckpointIO
from lightning_cnn.training.loggers import PlacedLogger, RunLogger, check_logger_packages, finish_runs
from lightning_cnn.training.predictions import PredictionCSV
from lightning_cnn.training.progress import progress_callback


def one_of_each(loggers: list[Any]) -> list[Any]:
    """The loggers, the first of each class only: a logger fragment may add the default TensorBoard logger again,
    and two loggers of one kind would write the same run folder twice."""
    kept: dict[type, Any] = {}
    for each in loggers:
        kept.setdefault(type(each), each)
    return list(kept.values())


def configured_loggers(logger: Any, root: str) -> list[Any]:
    """The loggers ``trainer.logger`` asks for: TensorBoard when unset or true, none when false."""
    if logger is None or logger is True:
        return [RunLogger(save_dir=root)]
    if logger is False:
        return []
    return one_of_each(list(logger) if isinstance(logger, (list, tuple)) else [logger])


def check_logger_config(trainer: Any) -> None:
    """Before any logger is built: one line with the pip command for a configured logger whose package is missing."""
    loggers = trainer.get("logger")
    loggers = loggers if isinstance(loggers, list) else [loggers]
    check_logger_packages([str(each.get("class_path")) for each in loggers if hasattr(each, "get")])


def saved_config_name(folder: RunFolder, subcommand: str | None) -> str | None:
    """The file this command saves its config as when it goes on in an existing run (a resume, a test of a run's
    checkpoint), beside the run's own ``config.yaml``; None for a new run, which saves ``config.yaml``."""
    return config_name(folder.path, subcommand) if folder.resumed else None


def trainer_arguments(
    config: dict[str, Any],
    callbacks: list[Any],
    folder: RunFolder,
    subcommand: str | None,
    labels: tuple[str | None, list[str]],
    progress: tuple[str, float],
    saved_config: str | None = None,
) -> tuple[dict[str, Any], list[Any]]:
    """The Trainer's options and callbacks for a command: ``config`` (the configured Trainer options) and
    ``callbacks`` completed with the loggers placed in ``folder`` under the run's ``labels`` (name, tags), our
    callbacks, the ``progress`` display (kind, seconds between lines) and the checkpoint plugin.
    ``saved_config``: the config file a command going on in an existing run saves, which a resume's schedule note
    names."""
    config = dict(config)
    loggers = configured_loggers(config.get("logger"), config.get("default_root_dir") or ".")
    for each in loggers:
        if isinstance(each, PlacedLogger):
            each.place(folder, *labels)
    if any(isinstance(each, PlacedLogger) for each in loggers):
        for callback in callbacks:
            if isinstance(callback, RunCheckpoint):
                callback.run_folder = folder
    if not loggers:  # `--trainer.logger false`: nothing to log learning rates to, but a run folder all the same
        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
        if not config.get("fast_dev_run"):
            # the other processes write nothing: Lightning broadcasts rank 0's folders
            mine = folder.resumed or rank_zero_only.rank == 0
            config["default_root_dir"] = str(folder.path if mine else folder.runs)
    config["logger"] = loggers or False
    if subcommand == "predict":
        callbacks.append(PredictionCSV())
    if saved_config is not None and subcommand == "fit":
        callbacks.append(ScheduleResumeNote(folder.path / saved_config))
    callbacks += [RunLabels(), LogEveryEpoch()]
    shown = progress_callback(
        *progress,
        enabled=config.get("enable_progress_bar") is not False,
        configured=[*callbacks, *(config.get("callbacks") or [])],
    )
    if shown is not None:
        callbacks.append(shown)
    plugins = config.get("plugins") or []
    plugins = plugins if isinstance(plugins, list) else [plugins]
    if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        config["plugins"] = [*plugins, AtomicCheckpointIO()]
    return config, callbacks


@contextlib.contextmanager
def run_guard(folder: RunFolder, trainer: Any) -> Iterator[None]:
    """Around a command's run: a failure removes the run folder it created when nothing was trained yet, else adds
    to the error which folder and checkpoint were kept; the loggers are finished and the folder released however
    the run ends."""
    try:
        yield
    except BaseException as err:
        if trainer.is_global_zero:
            after_failure(folder, folder.path if folder.resumed else None, trainer, err)
        if type(err) is SystemExit and trainer.interrupted:
            # Lightning ends a run stopped by Ctrl-C with exit(1) after its graceful shutdown: report the
            # interruption as such (one line, exit 130), as for a Ctrl-C outside the training loop
            raise KeyboardInterrupt from err
        raise
    finally:
        finish_runs(trainer.loggers)
        release_runs()
