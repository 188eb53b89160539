"""What the experiment tools (kfold, search) share: running one ``fit`` in this process and reporting results.

A tool builds a list of fit options, as typed after ``python -m lightning_cnn fit``, and gets back the run's
folder and its validation metrics; every run is an ordinary ``lightning_logs/version_N`` run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from lightning_cnn.cli import cli_main
from lightning_cnn.config_files import check_config_files, option_given
from lightning_cnn.errors import ConfigError, user_error


@dataclass
class FitResult:
    """A finished fit: its run folder and the ``val/*`` values of its last validation epoch."""

    log_dir: Path
    metrics: dict[str, float]


class ValidationMetrics(L.Callback):
    """Keeps the ``val/*`` values of the latest validation epoch (``trainer.callback_metrics`` is emptied when
    ``test_after_fit`` tests after the fit)."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            metrics = trainer.callback_metrics
            self.metrics = {k: float(v) for k, v in sorted(metrics.items()) if k.startswith("val/")}


@contextlib.contextmanager
def tool_command_line(quiet: bool = False) -> Iterator[None]:
    """Hide the tool's own options in ``sys.argv`` while it runs the CLI with explicit args (LightningCLI warns
    when both are given); ``quiet`` also hides Lightning's info lines."""
    argv, levels = sys.argv, {}
    sys.argv = sys.argv[:1]
    if quiet:
        for name in ("lightning.pytorch", "lightning.fabric"):
            levels[name] = logging.getLogger(name).level
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        sys.argv = argv
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def run_fit(args: Sequence[str], callbacks: Sequence[L.Callback] = ()) -> FitResult:
    """Run ``fit ARGS`` in this process, with ``callbacks`` added to the trainer's."""
    args = check_config_files(args)
    if not option_given(args, "trainer.enable_model_summary"):  # the same summary for every run of the tool
        args += ["--trainer.enable_model_summary", "false"]
    recorder = ValidationMetrics()
    with tool_command_line(quiet=True):
        cli = cli_main(["fit", *args], callbacks=[recorder, *callbacks])
    return FitResult(Path(cli.trainer.log_dir or "."), recorder.metrics)


def runs_folder(args: Sequence[str], context: str = "") -> Path:
    """The ``lightning_logs`` folder a ``fit ARGS`` run would write into, after checking every option and building
    the model, data module and trainer (nothing is loaded or written). A bad option fails here, before any run;
    with ``context`` set the failure is one ``ConfigError`` line starting with it instead of the parser's message."""
    args = check_config_files(args)
    stderr = io.StringIO()
    try:
        with (
            tool_command_line(quiet=True),
            contextlib.redirect_stderr(stderr) if context else contextlib.nullcontext(),
        ):
            trainer = cli_main(args, run=False).trainer  # run=False: no subcommand
    except SystemExit as err:
        if not context:
            raise
        first = next((line for line in stderr.getvalue().splitlines() if line.startswith("error: ")), "invalid value")
        raise ConfigError(f"{context}: {first.removeprefix('error: ')}") from err
    except Exception as err:  # jsonargparse wraps errors raised in constructors
        found = user_error(err)
        if not context or found is None:
            raise
        raise ConfigError(f"{context}: {found}") from err
    root = getattr(trainer.logger, "root_dir", None)
    return Path(root) if root else Path(trainer.default_root_dir) / "lightning_logs"
