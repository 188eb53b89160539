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
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_cnn.config_files import option_given, read_yaml
from lightning_cnn.errors import ConfigError
from lightning_cnn.experiments.runner import run_fit, runs_folder
from lightning_cnn.run_folder import abandoned, claim_folder, release_runs, remove_if_untrained
from lightning_cnn.tools.options import ToolParser
from lightning_cnn.tools.tables import format_table, write_csv


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = ToolParser(
        prog="lightning-cnn kfold",
        description="k-fold cross-validation: one fit per fold, then each fold's val/* metrics and their mean ± std."
        " Every other option is a fit option (see 'python -m lightning_cnn fit --help').",
    )
    parser.add_argument("--folds", type=int, default=None, help="number of folds (data.num_folds); default 5")
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="KFOLD_DIR",
        help="a kfold_* folder of an interrupted cross-validation: keep its finished folds, run the missing ones",
    )
    args, fit_args = parser.parse_known_args(list(argv))
    if args.resume is None and args.folds is None:
        args.folds = 5
    if args.folds is not None and args.folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {args.folds}")
    for key in ("data.fold", "data.num_folds"):
        if option_given(fit_args, key):
            raise ConfigError(f"kfold sets --{key} for every fold itself; leave it out and give --folds N")
    return args, fit_args


def load_previous(
    folder: Path, folds: int | None, fit_args: list[str]
) -> tuple[int, list[str], list[dict[str, Any]], float]:
    """Folds, fit options, finished runs and wall time recorded by an interrupted cross-validation in ``folder``,
    checked against the options given now (none given: the recorded ones apply)."""
    path = folder / "kfold.json"
    try:
        record = json.loads(path.read_text())
        recorded_folds, recorded_args = int(record["folds"]), [str(a) for a in record["fit_args"]]
        runs, seconds = list(record["runs"]), float(record.get("wall_time_s", 0.0))
    except FileNotFoundError:
        raise ConfigError(f"--resume: {path} not found; give a kfold_* folder that a kfold run wrote") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"--resume: {path} is not a kfold record ({err})") from None
    if folds is not None and folds != recorded_folds:
        raise ConfigError(f"--resume: {folder} has {recorded_folds} folds, not {folds}; leave --folds out")
    if fit_args and fit_args != recorded_args:
        raise ConfigError(
            f"--resume: {folder} was run with other fit options ({' '.join(recorded_args) or 'none'}); give no fit"
            " options to go on with those"
        )
    return recorded_folds, recorded_args, runs, seconds


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


def remove_abandoned_folds(runs_root: Path, folds: int, done: set[int]) -> None:
    """Remove the run folders of this cross-validation's unfinished folds that a killed process left before their
    first checkpoint (nothing can resume them), so a resumed cross-validation leaves one run folder per fold."""
    for run_dir in sorted(runs_root.glob("version_*")):
        try:
            saved = read_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else None
        except ConfigError:  # not a config this tool wrote
            continue
        data = saved.get("data") if isinstance(saved, dict) else None
        init_args = (data.get("init_args") if isinstance(data, dict) else None) or {}
        fold = init_args.get("fold")
        if init_args.get("num_folds") == folds and fold not in done and abandoned(run_dir):
            remove_if_untrained(run_dir)
            print(f"kfold: removed {run_dir}, left by fold {fold} before its first checkpoint", file=sys.stderr)
    release_runs()


def main(argv: Sequence[str]) -> None:
    """Run every fold (those missing from ``--resume``'s record), then print and save the table."""
    args, fit_args = parse_args(argv)
    folder: Path | None = args.resume
    runs: list[dict[str, Any]] = []
    start = time.monotonic()
    if folder is not None:
        args.folds, fit_args, runs, seconds = load_previous(folder, args.folds, fit_args)
        start -= seconds
        print(f"kfold: resuming {folder}: {len(runs)} of {args.folds} folds done", file=sys.stderr, flush=True)
    runs_root = runs_folder(fit_args)  # every option checked before the first fold
    done = {run["fold"] for run in runs}
    if folder is not None:
        remove_abandoned_folds(runs_root, args.folds, done)
    table = ""
    for fold in (f for f in range(args.folds) if f not in done):
        hint = f" (if interrupted: kfold --resume {folder})" if folder else ""
        print(f"kfold: fold {fold + 1} of {args.folds}{hint}", file=sys.stderr, flush=True)
        result = run_fit([*fit_args, "--data.fold", str(fold), "--data.num_folds", str(args.folds)])
        if not result.metrics:
            raise ConfigError(f"kfold: fold {fold} logged no val/* metric; does the run validate (limit_val_batches)?")
        runs = sorted([*runs, {"fold": fold, "run_dir": str(result.log_dir), "metrics": result.metrics}],
                      key=lambda run: run["fold"])  # fmt: skip
        folder = folder or claim_folder(runs_root, "kfold")
        table = save(folder, args.folds, fit_args, runs, time.monotonic() - start)
    if not table:  # resumed with every fold already done
        table = save(folder, args.folds, fit_args, runs, time.monotonic() - start)
    print(f"\n{args.folds}-fold cross-validation ({time.monotonic() - start:.0f} s), last-epoch validation metrics:")
    print(table)
    print(f"saved {folder / 'kfold.json'} and {folder / 'kfold.csv'}")
