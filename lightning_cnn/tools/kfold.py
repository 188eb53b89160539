"""k-fold cross-validation: ``python -m lightning_cnn kfold --folds 5 --config CONFIG [fit options]``.

Fold k trains on the other folds of a seeded k-way split of the training set and validates on fold k
(``data.fold``); every fold is an ordinary run in ``lightning_logs/version_N``. The table of each fold's last-epoch
``val/*`` metrics, with their mean and sample standard deviation, is printed and saved as ``kfold.json`` and
``kfold.csv`` in ``lightning_logs/kfold_<date-time>/`` beside the runs (rewritten after every fold).
``--resume lightning_logs/kfold_<date-time>`` finishes an interrupted cross-validation: the folds recorded there
are kept and only the missing ones run, with the recorded fit options.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_cnn.config_files import option_given
from lightning_cnn.errors import ConfigError
from lightning_cnn.experiments.runner import (
    Experiment,
    load_record,
    remove_abandoned_runs,
    run_fit,
    runs_folder,
    summarize,
)
from lightning_cnn.tools.options import ToolParser, add_resume_option
from lightning_cnn.tools.tables import format_table, write_csv

MAX_FOLDS = 100  # one fit each: beyond this a cross-validation is leave-one-out in all but name and never ends


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = ToolParser(
        prog="lightning-cnn kfold",
        description="k-fold cross-validation: one fit per fold, then each fold's val/* metrics and their mean ± std."
        " Every other option is a fit option (see 'python -m lightning_cnn fit --help').",
    )
    parser.add_argument("--folds", type=int, default=None, help="number of folds (data.num_folds); default 5")
    add_resume_option(parser, "kfold", "cross-validation", "folds")
    args, fit_args = parser.parse_known_args(list(argv))
    if args.resume is None and args.folds is None:
        args.folds = 5
    if args.folds is not None and not 2 <= args.folds <= MAX_FOLDS:
        raise ConfigError(f"--folds must be from 2 to {MAX_FOLDS} (one fit per fold), got {args.folds}")
    for key in ("data.fold", "data.num_folds"):
        if option_given(fit_args, key):
            raise ConfigError(f"kfold sets --{key} for every fold itself; leave it out and give --folds N")
    return args, fit_args


def load_previous(
    folder: Path, folds: int | None, fit_args: list[str]
) -> tuple[int, list[str], list[dict[str, Any]], float]:
    """Folds, fit options, finished runs and wall time recorded by an interrupted cross-validation in ``folder``,
    checked against the options given now (none given: the recorded ones apply)."""
    record = load_record(folder, "kfold", fit_args)
    try:
        recorded_folds = int(record["folds"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"--resume: {folder / 'kfold.json'} is not a kfold record ({err})") from None
    if folds is not None and folds != recorded_folds:
        raise ConfigError(f"--resume: {folder} has {recorded_folds} folds, not {folds}; leave --folds out")
    return recorded_folds, record["fit_args"], record["runs"], record["wall_time_s"]


def save(folder: Path, folds: int, fit_args: list[str], runs: list[dict[str, Any]], seconds: float) -> str:
    """Write kfold.json and kfold.csv for the folds run so far; return the printed table."""
    stats = {key: value for key, value in summarize(runs).items() if key in ("mean", "std")}
    names = list(stats["mean"])
    record = {
        "folds": folds,
        "complete": len(runs) == folds,
        "fit_args": fit_args,
        "wall_time_s": round(seconds, 1),
        "runs": runs,
        **stats,
    }
    (folder / "kfold.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = [[run["fold"], *(run["metrics"][n] for n in names), run["run_dir"]] for run in runs]
    summary = [["mean", *stats["mean"].values(), ""], ["std", *stats["std"].values(), ""]]
    write_csv(folder / "kfold.csv", ["fold", *names, "run_dir"], rows + summary)
    mean_std = [f"{stats['mean'][n]:.4f} ± {stats['std'][n]:.4f}" for n in names]
    return format_table(["fold", *names, "run"], [*rows, ["mean ± std", *mean_std, ""]])


def remove_abandoned_folds(runs_root: Path, folds: int, done: set[int]) -> None:
    """Remove the run folders this cross-validation's unfinished folds left before their first checkpoint."""

    def missing(config: dict[str, Any]) -> str | None:
        data = config.get("data")
        init_args = (data.get("init_args") if isinstance(data, dict) else None) or {}
        fold = init_args.get("fold")
        return f"fold {fold}" if init_args.get("num_folds") == folds and fold not in done else None

    remove_abandoned_runs(runs_root, "kfold", missing)


def main(argv: Sequence[str]) -> None:
    """Run every fold (those missing from ``--resume``'s record), then print and save the table."""
    args, fit_args = parse_args(argv)
    experiment = Experiment("kfold", "fold", range(args.folds or 0), args.resume)
    if args.resume is not None:
        args.folds, fit_args, runs, seconds = load_previous(args.resume, args.folds, fit_args)
        experiment.resume(range(args.folds), runs, seconds)
    runs_root = runs_folder(fit_args)  # every option checked before the first fold
    if args.resume is not None:
        remove_abandoned_folds(runs_root, args.folds, {run["fold"] for run in experiment.runs})
    for fold in experiment.missing():
        experiment.progress(f"fold {fold + 1} of {args.folds}")
        result = run_fit([*fit_args, "--data.fold", str(fold), "--data.num_folds", str(args.folds)])
        if not result.metrics:
            raise ConfigError(f"kfold: fold {fold} logged no val/* metric; does the run validate (limit_val_batches)?")
        folder = experiment.add(fold, result, result.metrics, runs_root)
        save(folder, args.folds, fit_args, experiment.runs, experiment.seconds())
    folder = experiment.folder
    assert folder is not None  # claimed by the first fold, or the one resumed
    table = save(folder, args.folds, fit_args, experiment.runs, experiment.seconds())
    print(f"\n{args.folds}-fold cross-validation ({experiment.seconds():.0f} s), last-epoch validation metrics:")
    print(table)
    print(f"saved {folder / 'kfold.json'} and {folder / 'kfold.csv'}")
