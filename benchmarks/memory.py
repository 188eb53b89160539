"""Benchmark 4, peak memory: the peak resident set size (RSS) of a full ``lightning_cnn fit`` of a recipe.

Each fit runs in its own process; its peak RSS comes from the kernel (``wait4``), so it covers everything
the run touched: the data in memory, the model, Lightning, TensorBoard logging and the final test.
CIFAR-10's official batches are not available offline here, so the CIFAR-shaped fit uses the CIFAR-10
JPEG copy (the same 50,000 + 10,000 images of 3×32×32 in memory).

    python -m benchmarks.memory [--cifar_epochs 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import ROOT, machine

LIMITS_GB = {"MNIST": 2.0, "CIFAR-10 (JPEG copy)": 3.0}


def peak_rss(args: list[str]) -> tuple[float, float]:
    """Run ``python -m lightning_cnn fit ARGS``; its peak RSS in GB and its wall time in seconds."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen([sys.executable, "-m", "lightning_cnn", "fit", *args], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)  # reaps the child and returns its resource usage
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            log.seek(0)
            raise SystemExit(f"fit {' '.join(args)} failed:\n{log.read()[-2000:]}")
    return usage.ru_maxrss / 1024**2, time.perf_counter() - start  # ru_maxrss is in KiB on Linux


def measure(
    cifar_epochs: int = 10, extra: list[str] | None = None, parts: tuple[str, ...] = tuple(LIMITS_GB)
) -> list[dict]:
    """Peak RSS and wall time of a full fit (+ test) of the MNIST recipe and of a CIFAR-shaped one; ``extra``
    fit options shorten the runs (a smoke test)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        quiet = ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", tmp, *(extra or [])]
        runs = {
            "MNIST": ["--config", "configs/mnist/lenet5.yaml", *quiet],
            "CIFAR-10 (JPEG copy)": [
                "--config", "configs/cifar10_jpeg/convnet_bn_dropout.yaml",
                "--trainer.max_epochs", str(cifar_epochs), *quiet,
            ],
        }  # fmt: skip
        for name in parts:
            gb, seconds = peak_rss(runs[name])
            rows.append({"data": name, "config": runs[name][1], "peak_rss_gb": gb, "limit_gb": LIMITS_GB[name],
                         "seconds": seconds})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar_epochs", type=int, default=10)
    args = parser.parse_args()
    print(f"benchmark 4: peak RSS of a full fit (+ test)\nmachine: {machine()}")
    for row in measure(args.cifar_epochs):
        verdict = "ok" if row["peak_rss_gb"] <= row["limit_gb"] else "OVER"
        print(
            f"{row['data']}: peak RSS {row['peak_rss_gb']:.2f} GB (limit {row['limit_gb']} GB, {verdict}),"
            f" {row['seconds']:.0f} s, {row['config']}"
        )


if __name__ == "__main__":
    main()
