"""Repeated runs: ``python -m lightning_cnn repeat --seeds 42 1 2 3 --config CONFIG [fit options]``.

The recipe trains once per seed (``seed_everything SEED``), one after the other (``--workers N``: N at a time, each
in its own process with its share of the CPU threads), and is tested after each fit
(``test_after_fit true`` unless given), so the spread of its test accuracy over seeds is measured rather than
guessed from one run. Every run is an ordinary run in ``lightning_logs/version_N`` (``lightning-cnn runs`` shows
its seed in the "differs" column). The table of each run's ``test/*`` metrics (``val/*`` when no test ran), with
their minimum, mean ± sample standard deviation and maximum, is printed and saved as ``repeat.json`` and
``repeat.csv`` in ``lightning_logs/repeat_<date-time>/`` beside the runs (rewritten after every run).
``--resume lightning_logs/repeat_<date-time>`` finishes an interrupted repeat: only the seeds missing run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from lightning_cnn.config_files import option_given
from lightning_cnn.errors import ConfigError
from lightning_cnn.experiments import runner
from lightning_cnn.tools.options import ToolParser, add_resume_option
from lightning_cnn.tools.tables import format_table, write_csv


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = ToolParser(
        prog="lightning-cnn repeat",
        description="Repeated runs: one fit per seed, then each run's test/* metrics (val/* when no test ran) and"
        " their min, mean ± std and max. Every other option is a fit option (see 'lightning-cnn fit --help').",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, metavar="SEED", help="the seeds, one run each (seed_everything)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="runs trained at once, each in its own process (default: 1, one after the other)",
    )
    add_resume_option(parser, "repeat", "repeat", "runs")
    args, fit_args = parser.parse_known_args(list(argv))
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.resume is None and args.seeds is None:
        parser.error("give --seeds, e.g. --seeds 42 1 2 3 (or --resume FOLDER)")
    if args.seeds is not None and len(set(args.seeds)) < len(args.seeds):
        twice = sorted({seed for seed in args.seeds if args.seeds.count(seed) > 1})
        raise ConfigError(f"--seeds gives {', '.join(map(str, twice))} twice; each seed trains one run")
    if option_given(fit_args, "seed_everything"):
        raise ConfigError("repeat sets --seed_everything for every run itself; leave it out and give --seeds")
    return args, fit_args


def run_args(fit_args: list[str], seed: int) -> list[str]:
    """The fit options of the run with ``seed``: tested after its fit unless ``--test_after_fit`` is given."""
    args = [*fit_args, "--seed_everything", str(seed)]
    if not option_given(fit_args, "test_after_fit"):
        args += ["--test_after_fit", "true"]
    return args


def fit_in_worker(args: list[str], threads: int) -> runner.FitResult:
    """``fit ARGS`` in a worker process that uses ``threads`` CPU threads: one of several runs at once."""
    torch.set_num_threads(threads)
    return runner.run_fit(args)


def fits(
    fit_args: list[str], seeds: list[int], workers: int, starting: Callable[[int], None]
) -> Iterator[tuple[int, runner.FitResult]]:
    """Each seed's finished fit, as (seed, result): one after the other in this process (``starting(seed)`` called
    before each), or ``workers`` at a time in worker processes (spawned: a fresh interpreter each), in the order
    they end."""
    if workers == 1 or len(seeds) == 1:
        for seed in seeds:
            starting(seed)
            yield seed, runner.run_fit(run_args(fit_args, seed))
        return
    if not option_given(fit_args, "trainer.enable_progress_bar"):  # several bars at once would garble the console
        fit_args = [*fit_args, "--trainer.enable_progress_bar", "false"]
    threads = max(1, torch.get_num_threads() // min(workers, len(seeds)))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        started = {pool.submit(fit_in_worker, run_args(fit_args, seed), threads): seed for seed in seeds}
        for done in as_completed(started):
            yield started[done], done.result()


def load_previous(folder: Path, seeds: list[int] | None, fit_args: list[str]) -> dict[str, Any]:
    """The record of an interrupted repeat in ``folder``, checked against the seeds and fit options given now (none
    given: the recorded ones apply)."""
    record = runner.load_record(folder, "repeat", fit_args)
    try:
        record["seeds"] = [int(seed) for seed in record["seeds"]]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"--resume: {folder / 'repeat.json'} is not a repeat record ({err})") from None
    if seeds is not None and seeds != record["seeds"]:
        recorded = " ".join(map(str, record["seeds"]))
        raise ConfigError(f"--resume: {folder} repeats seeds {recorded}, not {' '.join(map(str, seeds))}; leave"
                          " --seeds out")  # fmt: skip
    return record


def abandoned_seed(config: dict[str, Any], missing: set[int]) -> str | None:
    """``seed N`` when a saved ``config.yaml`` is that of a missing seed's run, else None."""
    seed = config.get("seed_everything")
    return f"seed {seed}" if seed in missing else None


def save(folder: Path, seeds: list[int], fit_args: list[str], runs: list[dict[str, Any]], seconds: float) -> str:
    """Write repeat.json and repeat.csv for the runs so far; return the printed table."""
    stats = runner.summarize(runs)
    names = list(stats["mean"])
    record = {
        "seeds": seeds,
        "complete": len(runs) == len(seeds),
        "fit_args": fit_args,
        "wall_time_s": round(seconds, 1),
        "runs": runs,
        **stats,
    }
    (folder / "repeat.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = [[run["seed"], *(run["metrics"][n] for n in names), run["run_dir"]] for run in runs]
    summary = [[key, *stats[key].values(), ""] for key in ("min", "mean", "std", "max")]
    write_csv(folder / "repeat.csv", ["seed", *names, "run_dir"], rows + summary)
    mean_std = [f"{stats['mean'][n]:.4f} ± {stats['std'][n]:.4f}" for n in names]
    spread = [summary[0], ["mean ± std", *mean_std, ""], summary[3]]
    return format_table(["seed", *names, "run"], [*rows, *spread])


def main(argv: Sequence[str]) -> None:
    """Run every seed (those missing from ``--resume``'s record), then print and save the table."""
    args, fit_args = parse_args(argv)
    experiment = runner.Experiment("repeat", "seed", args.seeds or [], args.resume)
    if args.resume is not None:
        record = load_previous(args.resume, args.seeds, fit_args)
        args.seeds, fit_args = record["seeds"], record["fit_args"]
        experiment.resume(args.seeds, record["runs"], record["wall_time_s"])
    runs_root = runner.runs_folder(run_args(fit_args, args.seeds[0]))  # every option checked before the first run
    missing = experiment.missing()
    if args.resume is not None:
        runner.remove_abandoned_runs(runs_root, "repeat", lambda config: abandoned_seed(config, set(missing)))

    def which(seed: int) -> str:
        return f"run {args.seeds.index(seed) + 1} of {len(args.seeds)}, seed {seed}"

    at_once = min(args.workers, len(missing))
    if at_once > 1:
        experiment.progress(f"{len(missing)} runs, {at_once} at a time, seeds {' '.join(map(str, missing))}")
    for seed, result in fits(fit_args, missing, args.workers, lambda seed: experiment.progress(which(seed))):
        if at_once > 1:
            experiment.progress(f"{which(seed)} done")
        metrics = result.test_metrics or result.metrics
        if not metrics:
            raise ConfigError(f"repeat: the run of seed {seed} logged no test/* or val/* metric; does it test or"
                              " validate (limit_test_batches, limit_val_batches)?")  # fmt: skip
        folder = experiment.add(seed, result, metrics, runs_root)
        save(folder, args.seeds, fit_args, experiment.runs, experiment.seconds())
    folder = experiment.folder
    assert folder is not None  # claimed by the first run, or the one resumed
    table = save(folder, args.seeds, fit_args, experiment.runs, experiment.seconds())
    seeds = " ".join(map(str, args.seeds))
    print(f"\n{len(args.seeds)} runs of one recipe, seeds {seeds} ({experiment.seconds():.0f} s):")
    print(table)
    print(f"saved {folder / 'repeat.json'} and {folder / 'repeat.csv'}")
