"""What the experiment tools (kfold, repeat, search, bag) share: running one ``fit`` in this process and reporting
results.

A tool builds a list of fit options, as typed after ``python -m lightning_cnn fit``, and gets back the run's
folder and its validation metrics; every run is an ordinary ``lightning_logs/version_N`` run. The tools that run a
fixed set of fits (kfold, repeat) also share their statistics over the runs and how an interrupted one resumes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from lightning_cnn.cli import cli_main
from lightning_cnn.config_files import check_config_files, option_given, read_yaml
from lightning_cnn.errors import ConfigError, user_error
from lightning_cnn.run_folder import abandoned, claim_folder, release_runs, remove_if_untrained


@dataclass
class FitResult:
    """A finished fit: its run folder, the ``val/*`` values of its last validation epoch and, when
    ``test_after_fit`` tested it, its ``test/*`` values (else empty)."""

    log_dir: Path
    metrics: dict[str, float]
    test_metrics: dict[str, float] = field(default_factory=dict)


class ValidationMetrics(L.Callback):
    """Keeps the ``val/*`` values of the latest validation epoch (``trainer.callback_metrics`` is emptied when
    ``test_after_fit`` tests after the fit), and the ``test/*`` values of that test."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.test_metrics: dict[str, float] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            metrics = trainer.callback_metrics
            self.metrics = {k: float(v) for k, v in sorted(metrics.items()) if k.startswith("val/")}

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        self.test_metrics = {k: float(v) for k, v in sorted(metrics.items()) if k.startswith("test/")}


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
    return FitResult(Path(cli.trainer.log_dir or "."), recorder.metrics, recorder.test_metrics)


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


class Experiment:
    """The finished runs of a tool that trains a fixed set of fits, each known by its ``key`` (kfold's fold,
    repeat's seed), kept in the order of the keys; the summary folder ``lightning_logs/TOOL_<date-time>/``, claimed
    when the first run ends (or the ``--resume`` folder); and the wall time, which a resumed experiment goes on
    counting."""

    def __init__(self, tool: str, key: str, keys: Sequence[Any], folder: Path | None) -> None:
        self.tool, self.key, self.keys, self.folder = tool, key, list(keys), folder
        self.runs: list[dict[str, Any]] = []
        self.start = time.monotonic()

    def resume(self, keys: Sequence[Any], runs: list[dict[str, Any]], seconds: float) -> None:
        """Go on from the keys, finished runs and wall time recorded by an interrupted experiment."""
        self.keys, self.runs = list(keys), runs
        self.start = time.monotonic() - seconds
        print(f"{self.tool}: resuming {self.folder}: {len(runs)} of {len(self.keys)} {self.key}s done",
              file=sys.stderr, flush=True)  # fmt: skip

    def seconds(self) -> float:
        """Wall time so far, a resumed experiment's earlier time included."""
        return time.monotonic() - self.start

    def missing(self) -> list[Any]:
        """The keys still to run, in order."""
        done = {run[self.key] for run in self.runs}
        return [key for key in self.keys if key not in done]

    def progress(self, what: str) -> None:
        """Print which run starts now (``what``), and, once there is a summary folder, how to resume."""
        hint = f" (if interrupted: {self.tool} --resume {self.folder})" if self.folder else ""
        print(f"{self.tool}: {what}{hint}", file=sys.stderr, flush=True)

    def add(self, key: Any, result: FitResult, metrics: dict[str, float], runs_root: Path) -> Path:
        """Record the finished run of ``key`` and return the summary folder (claimed under ``runs_root`` now if it
        is the first)."""
        run = {self.key: key, "run_dir": str(result.log_dir), "metrics": metrics}
        self.runs = sorted([*self.runs, run], key=lambda r: self.keys.index(r[self.key]))
        self.folder = self.folder or claim_folder(runs_root, self.tool)
        return self.folder


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Minimum, mean, sample standard deviation (n - 1) and maximum over ``runs`` of every metric all of them
    logged (each run's ``metrics``): the spread of an experiment's runs."""
    names = sorted(set.intersection(*(set(run["metrics"]) for run in runs)))
    values = {name: [run["metrics"][name] for run in runs] for name in names}
    return {
        "min": {name: min(v) for name, v in values.items()},
        "mean": {name: statistics.fmean(v) for name, v in values.items()},
        "std": {name: statistics.stdev(v) if len(v) > 1 else 0.0 for name, v in values.items()},
        "max": {name: max(v) for name, v in values.items()},
    }


def load_record(folder: Path, tool: str, fit_args: list[str]) -> dict[str, Any]:
    """The ``TOOL.json`` record an interrupted ``tool`` left in ``folder`` (its ``fit_args``, finished ``runs`` and
    ``wall_time_s`` read), for ``--resume``; fit options given now must be the recorded ones (none given: those
    apply), so the finished and the missing runs train alike."""
    path = folder / f"{tool}.json"
    try:
        record = json.loads(path.read_text())
        record["fit_args"] = [str(a) for a in record["fit_args"]]
        record["runs"], record["wall_time_s"] = list(record["runs"]), float(record.get("wall_time_s", 0.0))
    except FileNotFoundError:
        raise ConfigError(f"--resume: {path} not found; give a {tool}_* folder that a {tool} run wrote") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"--resume: {path} is not a {tool} record ({err})") from None
    if fit_args and fit_args != record["fit_args"]:
        raise ConfigError(
            f"--resume: {folder} was run with other fit options ({' '.join(record['fit_args']) or 'none'}); give no"
            " fit options to go on with those"
        )
    return record


def remove_abandoned_runs(runs_root: Path, tool: str, missing: Callable[[dict[str, Any]], str | None]) -> None:
    """Remove the run folders under ``runs_root`` that a killed ``tool`` left before their first checkpoint (nothing
    can resume them), so a resumed experiment leaves one run folder per run. ``missing(config)`` names the run a
    saved ``config.yaml`` belongs to ("fold 1") when it is one of the experiment's runs still to do, else None."""
    for run_dir in sorted(runs_root.glob("version_*")):
        try:
            saved = read_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else None
        except ConfigError:  # not a config this tool wrote
            continue
        which = missing(saved) if isinstance(saved, dict) else None
        if which is not None and abandoned(run_dir):
            remove_if_untrained(run_dir)
            print(f"{tool}: removed {run_dir}, left by {which} before its first checkpoint", file=sys.stderr)
    release_runs()
