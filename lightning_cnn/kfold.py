"""k-fold cross-validation: ``python -m lightning_cnn kfold --folds 5 --config CONFIG [fit options]``.

Fold k trains on the other folds of a seeded k-way split of the training set and validates on fold k
(``data.fold``); every fold is an ordinary run in ``lightning_logs/version_N``. The table of each fold's last-epoch
``val/*`` metrics, with their mean and sample standard deviation, is printed and saved as ``kfold.json`` and
``kfold.csv`` in ``lightning_logs/kfold_<date-time>/`` beside the runs (rewritten after every fold).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_cnn.errors import ConfigError
from lightning_cnn.experiment import claim_folder, format_table, option_given, run_fit, runs_folder, write_csv


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_cnn kfold",
        description="k-fold cross-validation: one fit per fold, then each fold's val/* metrics and their mean ± std."
        " Every other option is a fit option (see 'python -m lightning_cnn fit --help').",
        allow_abbrev=False,
    )
    parser.add_argument("--folds", type=int, default=5, help="number of folds (data.num_folds); default 5")
    args, fit_args = parser.parse_known_args(list(argv))
    if args.folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {args.folds}")
    for key in ("data.fold", "data.num_folds"):
        if option_given(fit_args, key):
            raise ConfigError(f"kfold sets --{key} for every fold itself; leave it out and give --folds N")
    return args, fit_args


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (n - 1) over the folds of every metric all folds logged."""
    names = sorted(set.intersection(*(set(run["metrics"]) for run in runs)))
    values = {name: [run["metrics"][name] for run in runs] for name in names}
    return {
        "mean": {name: statistics.fmean(v) for name, v in values.items()},
        "std": {name: statistics.stdev(v) if len(v) > 1 else 0.0 for name, v in values.items()},
    }


def save(folder: Path, folds: int, fit_args: list[str], runs: list[dict[str, Any]], seconds: float) -> str:
    """Write kfold.json and kfold.csv for the folds run so far; return the printed table."""
    stats = summarize(runs)
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


def main(argv: Sequence[str]) -> None:
    """Run every fold, then print and save the table."""
    args, fit_args = parse_args(argv)
    runs_root = runs_folder(fit_args)  # every option checked before the first fold
    folder: Path | None = None
    runs: list[dict[str, Any]] = []
    start = time.monotonic()
    for fold in range(args.folds):
        print(f"kfold: fold {fold + 1} of {args.folds}", file=sys.stderr, flush=True)
        result = run_fit([*fit_args, "--data.fold", str(fold), "--data.num_folds", str(args.folds)])
        if not result.metrics:
            raise ConfigError(f"kfold: fold {fold} logged no val/* metric; does the run validate (limit_val_batches)?")
        runs.append({"fold": fold, "run_dir": str(result.log_dir), "metrics": result.metrics})
        folder = folder or claim_folder(runs_root, "kfold")
        table = save(folder, args.folds, fit_args, runs, time.monotonic() - start)
    print(f"\n{args.folds}-fold cross-validation ({time.monotonic() - start:.0f} s), last-epoch validation metrics:")
    print(table)
    print(f"saved {folder / 'kfold.json'} and {folder / 'kfold.csv'}")
