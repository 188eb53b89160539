"""Hyper-parameter search with Optuna: ``python -m lightning_cnn search --space configs/search/lenet5_lr.yaml
[--trials N] [--name NAME] [fit options]``.

The space file names the base configs, the metric, the sampler and, under ``space``, any fit option (the keys of
the command line, e.g. ``model.optimizer.init_args.lr``) with its range. Every trial is an ordinary run in
``lightning_logs/version_N`` (its ``trial.yaml`` records the trial number and values); a trial whose metric falls
below the median of earlier trials at the same epoch is stopped there (pruned). The study lives in
``lightning_logs/search_<NAME>/study.db`` (NAME defaults to the space file's name): running the same command again
resumes it, reruns a trial that was cut short and only runs the trials still missing. Several processes running
the same command at once (in several terminals, or as several jobs on one machine) are workers of one search: they
share its trials through the study database, each claims the next trial in turn, and together they run the number
asked for. ``search.csv`` (every trial, best first) and ``best.yaml`` (the best values, usable as a ``--config``
after the base configs) are written there when a worker ends.

With ``--storage URL`` (an Optuna database URL such as ``postgresql://USER@HOST:PORT/DB``) the study, named
``search_<NAME>``, lives in that database instead and workers on several machines share it; each keeps its own
search folder. A trial whose worker died stops sending its heartbeat (every ``--heartbeat`` seconds) and, twice
that long after its last one, is failed and runs again in the next worker that claims a trial.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import lightning as L
import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one search process per folder there
    fcntl = None  # type: ignore[assignment]

from lightning_cnn.config_files import find_config, option_given, read_yaml
from lightning_cnn.errors import ConfigError, DivergedError, check_file
from lightning_cnn.experiments.runner import run_fit, runs_folder
from lightning_cnn.experiments.study_storage import (
    HEARTBEAT_S,
    StudyStorage,
    claim_lock,
    locked,
    rdb_storage,
    storage_errors,
    study_storage,
)
from lightning_cnn.internals import fail_trial
from lightning_cnn.models.base import METRICS
from lightning_cnn.tools.options import ToolParser
from lightning_cnn.tools.tables import format_table, write_csv

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "none")
SPEC_KEYS = ("base", "metric", "direction", "sampler", "trials", "seed", "pruner", "space")
RANGE_KEYS = {"low", "high", "log", "step"}
PARAM_KEYS = {"float": RANGE_KEYS, "int": RANGE_KEYS, "categorical": {"choices"}}
# MedianPruner: the first trials always finish, so later ones have a median to be compared with
PRUNER_STARTUP_TRIALS = 2


@dataclass
class SearchSpec:
    """A search space file, checked."""

    path: Path
    base: list[str]
    metric: str
    direction: str
    sampler: str
    trials: int
    seed: int
    pruner: str
    space: dict[str, dict[str, Any]]
    raw: dict[str, Any]

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"search space {self.path}: {key}: {problem}")


def load_spec(path: Path, trials: int | None = None) -> SearchSpec:
    """Read and check a search space file, with the command line's ``--trials`` (which replaces the file's
    ``trials``); any problem is one ``ConfigError`` line naming the file and key."""
    check_file(path, "search space file")
    raw = read_yaml(path, "search space")
    if not isinstance(raw, dict):
        raise ConfigError(f"search space {path}: expected a mapping with keys {', '.join(SPEC_KEYS)}")
    spec = SearchSpec(path, [], "", "", "", 0, 42, "median", {}, raw)
    for key in raw:
        if key not in SPEC_KEYS:
            raise spec.error(key, f"unknown key; the keys are {', '.join(SPEC_KEYS)}")
    base = raw.get("base") or []
    spec.base = [base] if isinstance(base, str) else base
    if not isinstance(spec.base, list) or not all(isinstance(b, str) for b in spec.base):
        raise spec.error("base", "expected a list of config files")
    spec.base = [find_config(b) for b in spec.base]
    for file in spec.base:
        try:
            check_file(file, "config file", " (paths are relative to the current folder)")
        except ConfigError as err:
            raise spec.error("base", str(err)) from None
    spec.metric = raw.get("metric", "val/acc")
    logged = [metric for metric in METRICS if metric.startswith("val/")]
    if spec.metric not in logged:
        raise spec.error("metric", f"expected a validation metric that runs log, one of {', '.join(logged)}; got"
                         f" {spec.metric!r}")  # fmt: skip
    improves = {"max": "maximize", "min": "minimize"}[METRICS[spec.metric]]
    direction = raw.get("direction") or improves
    if direction not in ("maximize", "minimize"):
        raise spec.error("direction", f"expected maximize or minimize, got {direction!r}")
    if direction != improves:
        raise spec.error("direction", f"{spec.metric} improves when it is {improves}d, not {direction}d")
    spec.direction = direction
    spec.sampler = raw.get("sampler", "tpe")
    if spec.sampler not in SAMPLERS:
        raise spec.error("sampler", f"expected one of {', '.join(SAMPLERS)}, got {spec.sampler!r}")
    spec.pruner = raw.get("pruner", "median")
    if spec.pruner not in PRUNERS:
        raise spec.error("pruner", f"expected one of {', '.join(PRUNERS)}, got {spec.pruner!r}")
    spec.seed = raw.get("seed", 42)
    if not isinstance(spec.seed, int) or isinstance(spec.seed, bool):
        raise spec.error("seed", f"expected an integer, got {spec.seed!r}")
    space = raw.get("space")
    if not isinstance(space, dict) or not space:
        raise spec.error("space", "expected a mapping of fit options to ranges, e.g. model.optimizer.init_args.lr:"
                         " {type: float, low: 1.0e-4, high: 0.1, log: true}")  # fmt: skip
    spec.space = {str(key): check_param(spec, f"space.{key}", value) for key, value in space.items()}
    if spec.sampler == "grid":
        for key, param in spec.space.items():
            if param["type"] != "categorical":
                raise spec.error(f"space.{key}", "the grid sampler needs {type: categorical, choices: [...]}")
    grid_size = math.prod(len(p["choices"]) for p in spec.space.values()) if spec.sampler == "grid" else 0
    if trials is None:
        trials = raw.get("trials", grid_size or None)
        if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
            raise spec.error("trials", f"expected a number of trials of 1 or more (or give --trials N), got {trials!r}")
    elif trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    # the grid sampler stops the study once every point is done
    spec.trials = min(trials, grid_size) if grid_size else trials
    return spec


def _number(spec: SearchSpec, key: str, value: Any, kind: str) -> float | int:
    """``value`` as a float or int; YAML reads ``1e-4`` (no dot) as a string, so strings of numbers count too."""
    try:
        number = float(value) if kind == "float" else int(value)
        if isinstance(value, bool) or (kind == "int" and number != float(value)):
            raise ValueError
    except (TypeError, ValueError):
        raise spec.error(key, f"expected a number ({kind}), got {value!r}") from None
    return number


def check_param(spec: SearchSpec, key: str, param: Any) -> dict[str, Any]:
    """One ``space`` entry: ``{type: float|int, low, high[, log][, step]}`` or ``{type: categorical, choices}``."""
    if not isinstance(param, dict) or param.get("type") not in PARAM_KEYS:
        raise spec.error(key, f"expected {{type: float|int|categorical, ...}}, got {param!r}")
    kind = param["type"]
    unknown = set(param) - PARAM_KEYS[kind] - {"type"}
    if unknown:
        fields = ", ".join(sorted(PARAM_KEYS[kind]))
        raise spec.error(key, f"unknown field {sorted(unknown)[0]!r}; a {kind} takes {fields}")
    if kind == "categorical":
        choices = param.get("choices")
        if not isinstance(choices, list) or not choices:
            raise spec.error(key, "expected choices: [a list of values]")
        for choice in choices:
            if not (choice is None or isinstance(choice, (bool, int, float, str))):
                raise spec.error(key, f"choices must be numbers, strings, booleans or null, got {choice!r}")
        return {"type": kind, "choices": choices}
    for field in ("low", "high"):
        if field not in param:
            raise spec.error(key, f"a {kind} range needs low and high")
    low, high = _number(spec, key, param["low"], kind), _number(spec, key, param["high"], kind)
    if low >= high:
        raise spec.error(key, f"low ({low}) must be below high ({high})")
    log = param.get("log", False)
    if not isinstance(log, bool):
        raise spec.error(key, f"log must be true or false, got {log!r}")
    if log and low <= 0:
        raise spec.error(key, f"a log range needs low above 0, got {low}")
    step = _number(spec, key, param["step"], kind) if param.get("step") is not None else None
    if step is not None and (step <= 0 or log):
        raise spec.error(key, "step must be above 0, and cannot be combined with log: true")
    return {"type": kind, "low": low, "high": high, "log": log, "step": step}


def suggest(trial: optuna.Trial, key: str, param: dict[str, Any]) -> Any:
    """The trial's value for one space entry."""
    if param["type"] == "categorical":
        return trial.suggest_categorical(key, param["choices"])
    if param["type"] == "float":
        return trial.suggest_float(key, param["low"], param["high"], log=param["log"], step=param["step"])
    return trial.suggest_int(key, param["low"], param["high"], log=param["log"], step=param["step"] or 1)


def override_args(params: dict[str, Any]) -> list[str]:
    """Fit options setting ``params``: ``--KEY VALUE`` with VALUE as the command line reads it."""
    args: list[str] = []
    for key, value in params.items():
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return args


class ReportToTrial(L.Callback):
    """Records the trial in its run folder, reports the metric to the trial after every validation and stops the
    fit when the pruner says the trial is hopeless (never at the last epoch: that result is complete anyway).

    ``on_run_folder`` is called once the run's folder exists: until then another search worker starting a run
    could pick the same ``version_N``."""

    def __init__(
        self, trial: optuna.Trial, metric: str, search_dir: Path, on_run_folder: Callable[[], None] | None = None
    ) -> None:
        self.trial, self.metric, self.search_dir = trial, metric, search_dir
        self.on_run_folder = on_run_folder
        self.validations = 0
        self.pruned_at: int | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = Path(trainer.log_dir or ".")
        self.trial.set_user_attr("run_dir", str(log_dir))
        record = {"search": str(self.search_dir), "trial": self.trial.number, "params": self.trial.params}
        if trainer.is_global_zero and log_dir.is_dir():
            (log_dir / "trial.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
        if self.on_run_folder is not None:
            self.on_run_folder()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            logged = ", ".join(sorted(k for k in trainer.callback_metrics if k.startswith("val/")))
            raise ConfigError(f"search metric '{self.metric}' is not logged; the runs log {logged}")
        self.trial.report(float(value), self.validations)
        self.validations += 1
        last_epoch = trainer.max_epochs is not None and trainer.current_epoch >= trainer.max_epochs - 1
        if not last_epoch and self.trial.should_prune():
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True


def make_sampler(spec: SearchSpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler({k: p["choices"] for k, p in spec.space.items()}, seed=seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # TPE's default of 10 random trials first would make a small search entirely random
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, spec.trials // 2)))


def open_study(spec: SearchSpec, folder: Path, fit_args: list[str], storage: StudyStorage) -> optuna.Study:
    """Create the study in ``storage``, or reopen it when it (and ``folder``) holds the same search."""
    record = {"space_file": str(spec.path), "spec": {k: v for k, v in spec.raw.items() if k != "trials"},
              "fit_args": fit_args}  # fmt: skip
    saved = folder / "search.yaml"
    if saved.is_file():
        if yaml.safe_load(saved.read_text()) != json.loads(json.dumps(record)):
            raise ConfigError(
                f"search folder {folder} holds a search of another space or other fit options (see {saved});"
                " give --name NEW for a new search, or delete the folder"
            )
    else:
        folder.mkdir(parents=True, exist_ok=True)
        saved.write_text(yaml.safe_dump(json.loads(json.dumps(record)), sort_keys=False))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS)
    study = optuna.create_study(
        storage=rdb_storage(storage),
        study_name=storage.study_name,
        direction=spec.direction,
        sampler=make_sampler(spec, spec.seed),  # reseeded for every trial: see claim_trial
        pruner=pruner if spec.pruner == "median" else optuna.pruners.NopPruner(),
        load_if_exists=True,
    )
    if storage.shared:
        check_same_search(study, spec, storage)
    return study


def check_same_search(study: optuna.Study, spec: SearchSpec, storage: StudyStorage) -> None:
    """A study in a shared database records its space when created; a worker of another space with the same name
    (the space file's, or ``--name``) is refused instead of mixing its trials in."""
    record = {k: v for k, v in spec.raw.items() if k not in ("trials", "base")}
    record = json.loads(json.dumps({**record, "base": [Path(b).name for b in spec.base]}))  # paths differ by machine
    saved = study.user_attrs.get("search")
    if saved is None:
        study.set_user_attr("search", record)
    elif saved != record:
        raise ConfigError(
            f"--storage {storage.shown}: study {storage.study_name} holds a search of another space (its user"
            " attribute 'search' records it); give --name NEW for a new study"
        )


class Worker:
    """This process as a worker of the search in ``folder``: it holds ``workers/<host>-<pid>.lock`` for its whole
    life, so other workers can tell whether the trials it claimed are still running or were cut short. With
    ``heartbeat`` (a --storage study) the trials' heartbeat tells that instead, for workers on any machine."""

    def __init__(self, folder: Path, heartbeat: int | None = None) -> None:
        self.folder, self.heartbeat = folder, heartbeat
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.path = folder / "workers" / f"{self.name}.lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle: IO[str] = self.path.open("a")
        if fcntl is not None:
            fcntl.flock(self.handle, fcntl.LOCK_EX)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
        self.handle.close()

    def is_alive(self, name: str | None) -> bool:
        """Whether worker ``name`` still runs: its lock file is locked. A worker on another host is taken to be alive
        (its lock cannot be seen from here); a trial without a worker comes from a search process that has ended."""
        if name is None:
            return False
        if name == self.name or self.heartbeat is not None:  # a dead worker's trials are failed by their heartbeat
            return True
        if not name.startswith(f"{socket.gethostname()}-"):
            return True
        path = self.folder / "workers" / f"{name}.lock"
        if fcntl is None or not path.is_file():
            return False
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
        path.unlink(missing_ok=True)  # its worker was killed: the lock file is left over
        return False


def retry_cut_short(study: optuna.Study, worker: Worker) -> None:
    """Queue again, once each, the values of trials that never finished: RUNNING ones whose worker is gone (it was
    killed), FAIL ones (interrupted or crashed). Trials that live workers are running are left alone."""
    if worker.heartbeat is not None:
        for trial in fail_stale_trials(study):
            print(f"search: trial {trial.number} (worker {trial.user_attrs.get('worker')}) sent no heartbeat for"
                  f" {2 * worker.heartbeat} s: failed; it runs again", file=sys.stderr, flush=True)  # fmt: skip
    requeued = set(study.user_attrs.get("requeued", []))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.FAIL)):
        if trial.state == TrialState.RUNNING:
            if worker.is_alive(trial.user_attrs.get("worker")):
                continue
            fail_trial(study, trial)
        if trial.number not in requeued:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            requeued.add(trial.number)
    study.set_user_attr("requeued", sorted(requeued))


def fail_stale_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Fail the RUNNING trials whose heartbeat stopped (their worker was killed, or its machine lost) and return
    them; Optuna's grace period before that is twice the heartbeat interval."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number in running]


def taken_away(number: int, storage: StudyStorage) -> None:
    """Say that another worker failed this worker's trial ``number`` while it still ran it: no heartbeat of it reached
    the database for the grace period. Its values run again in a trial of their own; this result is dropped."""
    print(f"search: trial {number} was failed by another worker: its heartbeat was missing for over"
          f" {2 * (storage.heartbeat or 0)} s (a suspended machine, or the database out of reach); its values run"
          " again in a new trial", file=sys.stderr, flush=True)  # fmt: skip


def trials_taken(study: optuna.Study) -> int:
    """Trials that count towards the number asked for: finished ones, and those running in live workers."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)))


def trial_value(trial: FrozenTrial) -> float | None:
    """A finished trial's metric; a pruned one's last reported value."""
    if trial.state == TrialState.COMPLETE:
        return trial.value
    if trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


def ranked(study: optuna.Study, direction: str) -> list[FrozenTrial]:
    """Every trial: complete ones best first, then pruned ones best first, then the rest by number."""
    sign = -1 if direction == "maximize" else 1
    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1}

    def key(t: FrozenTrial) -> tuple[int, float, int]:
        value = trial_value(t)
        return order.get(t.state, 2), sign * value if value is not None else math.inf, t.number

    return sorted(study.trials, key=key)


def summarize(study: optuna.Study, spec: SearchSpec, folder: Path) -> str:
    """Write search.csv and best.yaml; return the table to print."""
    keys = list(spec.space)
    header = ["trial", "state", spec.metric, "epochs", *keys, "seconds", "run_dir"]
    rows = []
    for t in ranked(study, spec.direction):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        state = t.state.name.lower() + (f" ({t.user_attrs['stopped']})" if "stopped" in t.user_attrs else "")
        rows.append([t.number, state, trial_value(t), len(t.intermediate_values),
                     *(t.params.get(k) for k in keys), seconds, t.user_attrs.get("run_dir")])  # fmt: skip
    write_csv(folder / "search.csv", header, rows)
    complete = [t for t in ranked(study, spec.direction) if t.state == TrialState.COMPLETE]
    if complete:
        best = complete[0]
        configs = " ".join(f"--config {b}" for b in spec.base)
        lines = [
            f"# Best of {len(complete)} complete trials of {folder} ({spec.path}): {spec.metric} = {best.value:.6g},",
            f"# trial {best.number}, run {best.user_attrs.get('run_dir')}. Train with these values:",
            f"#   python -m lightning_cnn fit {configs} --config {folder / 'best.yaml'}",
        ]
        values = yaml.safe_dump(best.params, sort_keys=False)
        (folder / "best.yaml").write_text("\n".join(lines) + "\n" + values)
    shown = [[*row[:-2], format_seconds(row[-2]), row[-1]] for row in rows]
    return format_table(header[:-1] + ["run"], shown)


def format_seconds(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.0f}"


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = ToolParser(
        prog="lightning-cnn search",
        description="Hyper-parameter search with Optuna over fit options; every other option is a fit option"
        " given to every trial (see 'python -m lightning_cnn fit --help').",
    )
    parser.add_argument("--space", required=True, type=Path, help="the search space file, e.g. configs/search/*.yaml")
    parser.add_argument("--trials", type=int, help="number of finished trials wanted; default the file's 'trials'")
    parser.add_argument("--name", help="search folder lightning_logs/search_NAME; default the space file's name")
    parser.add_argument("--storage", metavar="URL", help="an Optuna database URL (postgresql://USER@HOST:PORT/DB,"
                        " sqlite:///PATH) holding the study (named search_NAME) that workers on several machines share;"
                        " default: study.db in the search folder")  # fmt: skip
    parser.add_argument("--heartbeat", type=int, metavar="SECONDS", help="with --storage: seconds between a running"
                        f" trial's heartbeats; a trial silent for twice that is failed and runs again (default"
                        f" {HEARTBEAT_S})")  # fmt: skip
    return parser.parse_known_args(list(argv))


def main(argv: Sequence[str]) -> None:
    """Run (or resume) the search, then print and save the summary."""
    args, fit_args = parse_args(argv)
    spec = load_spec(Path(find_config(str(args.space))), args.trials)
    for key in spec.space:
        if option_given(fit_args, key):
            raise ConfigError(f"--{key} is searched over in {spec.path}; leave it out of the fit options")
    base_args = [a for file in spec.base for a in ("--config", file)] + fit_args
    runs_root = runs_folder(base_args)  # the fit options, checked before any trial
    sample = {key: p["choices"][0] if p["type"] == "categorical" else p["low"] for key, p in spec.space.items()}
    runs_folder(base_args + override_args(sample), context=f"search space {spec.path}")  # the space's keys
    folder = runs_root / f"search_{args.name or spec.path.stem}"
    storage = study_storage(args, folder)  # a --storage database is reached before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    with storage_errors(storage):
        table = run_worker(spec, folder, storage, base_args, fit_args)
    print(f"\nsearch {folder}: {spec.metric} ({spec.direction}), {spec.sampler} sampler, best first:")
    print(table)
    saved = "search.csv and best.yaml" if (folder / "best.yaml").is_file() else "search.csv"
    print(f"saved {saved} in {folder}")


def run_worker(spec: SearchSpec, folder: Path, storage: StudyStorage, base_args: list[str], fit_args: list[str]) -> str:
    """Claim and run trials until the study has the number asked for; return the summary table."""
    with claim_lock(folder, storage):  # workers started together would otherwise both create the study's tables
        study = open_study(spec, folder, fit_args, storage)
    if storage.shared:
        print(f"search: study {storage.study_name} in {storage.shown}, heartbeat every {storage.heartbeat} s",
              file=sys.stderr, flush=True)  # fmt: skip
    worker = Worker(folder, storage.heartbeat)
    try:
        with claim_lock(folder, storage):
            retry_cut_short(study, worker)
            done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
            running = trials_taken(study) - done
        if done or running:  # a worker joining a running search, or a search started again
            verb, others = ("joining", f", {running} running in other workers") if running else ("resuming", "")
            print(f"search: {verb} {folder}: {done} of {spec.trials} trials done{others}", file=sys.stderr,
                  flush=True)  # fmt: skip
        claim = contextlib.ExitStack()
        lost: list[int] = []  # trials of this worker that another one failed (no heartbeat) while it ran them

        def objective(trial: optuna.Trial) -> float:
            try:
                return run_trial(trial)
            except optuna.exceptions.UpdateFinishedTrialError:  # the database holds the trial as failed
                lost.append(trial.number)
                raise

        def run_trial(trial: optuna.Trial) -> float:
            trial.set_user_attr("worker", worker.name)
            params = {key: suggest(trial, key, param) for key, param in spec.space.items()}
            # the trial is claimed and, once its run folder exists, the next worker may claim the one after it
            reporter = ReportToTrial(trial, spec.metric, folder, on_run_folder=claim.close)
            try:
                result = run_fit(base_args + override_args(params), callbacks=[reporter])
            except DivergedError as err:  # a learning rate too high is a result of the search, not a failure of it
                trial.set_user_attr("stopped", "diverged")
                raise optuna.TrialPruned(str(err)) from err
            trial.set_user_attr("metrics", result.metrics)
            if reporter.pruned_at is not None:
                trial.set_user_attr("stopped", f"after epoch {reporter.pruned_at}")
                raise optuna.TrialPruned(f"{spec.metric} below the median after epoch {reporter.pruned_at}")
            return result.metrics[spec.metric]

        while True:
            with claim:
                claim.enter_context(claim_lock(folder, storage))
                retry_cut_short(study, worker)
                if trials_taken(study) >= spec.trials:
                    break
                # seeded by the trial's number: workers draw different values, a resumed search new ones
                study.sampler = make_sampler(spec, spec.seed + len(study.trials))
                try:
                    study.optimize(objective, n_trials=1)
                except (optuna.exceptions.UpdateFinishedTrialError, ValueError):  # Optuna: "Cannot tell a FAIL trial"
                    if not lost:
                        raise
                    taken_away(lost.pop(), storage)  # its values were queued again: go on with the next trial
        with locked(folder / "claim.lock"):  # search.csv and best.yaml: one worker of this folder at a time
            return summarize(study, spec, folder)
    finally:
        worker.close()
