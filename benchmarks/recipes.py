"""Recipe accuracy: test accuracy of a recipe's full ``fit``, per seed and torch thread count.

Each run is its own process (``OMP_NUM_THREADS`` and torch's intra-op threads set before torch starts, so the
thread count is what a user with that setting gets) and reports the ``test/acc`` of its ``metrics.json``.

    python -m benchmarks.recipes --config configs/mnist/lenet5.yaml --seeds 42 1 2 3 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.common import ROOT, machine, torch_threads


@dataclass
class RecipeRun:
    """One full fit of a recipe and its test accuracy."""

    config: str
    seed: int
    threads: int
    test_acc: float
    seconds: float
    checkpoint: str


def run_recipe(
    config: str, seed: int, threads: int | None, extra: list[str] | None = None, in_process: bool = False
) -> RecipeRun:
    """``python -m lightning_cnn fit --config CONFIG`` with this seed and thread count (None: torch's default, one
    per core), tested after the fit; in a fresh process, or in this one (faster to start, for quick checks)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "fit", "--config", str(ROOT / config), "--seed_everything", str(seed), "--trainer.default_root_dir", tmp,
            "--trainer.enable_progress_bar", "false", "--test_after_fit", "true", *(extra or []),
        ]  # fmt: skip
        start = time.perf_counter()
        if in_process:
            fit_in_this_process(args, threads)
        else:
            env = dict(os.environ)
            if threads is not None:
                env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            done = subprocess.run([sys.executable, "-m", "lightning_cnn", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True)  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"fit {config} (seed {seed}, {threads} threads) failed:\n{done.stderr[-2000:]}")
        seconds = time.perf_counter() - start
        metrics = json.loads(next(Path(tmp).glob("lightning_logs/version_*/metrics.json")).read_text())
    checkpoint = Path(metrics.get("checkpoint") or "").name
    threads = threads if threads is not None else torch.get_num_threads()
    return RecipeRun(config, seed, threads, float(metrics["test/acc"]), seconds, checkpoint)


def fit_in_this_process(args: list[str], threads: int | None) -> None:
    """Run the CLI with ``args`` here, with ``threads`` torch threads, restoring the thread count and ``sys.argv``."""
    from lightning_cnn.cli import cli_main

    argv = sys.argv[1:]
    sys.argv[1:] = []  # LightningCLI should not see this script's own flags
    try:
        with torch_threads(threads):
            cli_main(args)
    finally:
        sys.argv[1:] = argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/mnist/lenet5.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, default=None, help="also write the runs to this JSON file")
    parser.add_argument("extra", nargs="*", help="more fit options, after --")
    args = parser.parse_args()
    print(f"recipe accuracy: {args.config}\nmachine: {machine()}", flush=True)
    runs = []
    for seed in args.seeds:
        for threads in args.threads:
            run = run_recipe(args.config, seed, threads, args.extra)
            runs.append(run)
            print(f"seed {seed:>3}, {threads} threads: test/acc {run.test_acc:.4f} ({run.seconds:.0f} s,"
                  f" {run.checkpoint})", flush=True)  # fmt: skip
    accs = [run.test_acc for run in runs]
    print(f"min {min(accs):.4f}, mean {sum(accs) / len(accs):.4f}")
    if args.json:
        args.json.write_text(json.dumps([asdict(run) for run in runs], indent=2) + "\n")


if __name__ == "__main__":
    main()
