"""Parallel search: wall time of one ``lightning-cnn search`` with 1 worker process and with 2 on the same study.

    python -m benchmarks.parallel_search [--trials 8]

Each worker is the same command started in its own process on one search folder; together they run ``--trials``
trials of ``configs/search/lenet5_lr.yaml`` on MNIST (2 epochs of 40 batches each, no test).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, machine

SPACE = "configs/search/lenet5_lr.yaml"
TRIAL_FIT = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "40", "--test_after_fit", "false",
             "--trainer.enable_progress_bar", "false"]  # fmt: skip


def run_search(workers: int, trials: int, extra: list[str] | None = None) -> dict:
    """Start ``workers`` search processes on one fresh folder and wait for all; wall time, trials and best value."""
    import optuna

    from lightning_cnn.experiments.study_storage import STUDY_NAME

    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "lightning_cnn", "search", "--space", str(ROOT / SPACE), "--trials",
                   str(trials), "--trainer.default_root_dir", tmp, *TRIAL_FIT, *(extra or [])]  # fmt: skip
        start = time.perf_counter()
        processes = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True) for _ in range(workers)]  # fmt: skip
        errors = [process.communicate()[1] for process in processes]
        seconds = time.perf_counter() - start
        for process, error in zip(processes, errors, strict=True):
            if process.returncode != 0:
                raise RuntimeError(f"search with {workers} workers failed:\n{error[-2000:]}")
        study_db = next(Path(tmp).glob("lightning_logs/search_*/study.db"))
        study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{study_db}")
        states = [trial.state.name.lower() for trial in study.trials]
        return {"workers": workers, "trials": len(study.trials), "complete": states.count("complete"),
                "pruned": states.count("pruned"), "best": study.best_value, "seconds": seconds}  # fmt: skip


def measure(trials: int = 8, extra: list[str] | None = None) -> list[dict]:
    """One search with 1 worker, then the same search with 2."""
    return [run_search(workers, trials, extra) for workers in (1, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    print(f"parallel search: {SPACE}, {args.trials} trials\nmachine: {machine()}")
    for row in measure(args.trials):
        print(f"{row['workers']} worker(s): {row['seconds']:.0f} s, {row['complete']} complete + {row['pruned']}"
              f" pruned, best val/acc {row['best']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
