"""What a user waits for before anything trains: ``lightning-cnn --help``, ``fit --print_config`` and the time from
a fit's start to its first training step, beside bare ``import torch`` and ``import lightning``, each in a fresh
process (the median of ``ROUNDS``, in turn).

    python -m benchmarks.startup

``benchmarks.results`` runs this as the ``startup`` part of ``make results`` and renders it with ``TITLES``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L

from benchmarks.common import DATA_OPTIONS, machine, python_process

ROUNDS = 5
RECIPE = "configs/mnist/lenet5.yaml"
START_ENV = "STARTUP_START"  # the parent's time.time() just before the process started
FIRST_STEP_ENV = "STARTUP_FIRST_STEP"  # where FirstStep writes its seconds


class FirstStep(L.Callback):
    """Write the seconds from the process's start (``$STARTUP_START``) to the first training batch into
    ``$STARTUP_FIRST_STEP``, and stop the fit there."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        seconds = time.time() - float(os.environ[START_ENV])
        Path(os.environ[FIRST_STEP_ENV]).write_text(repr(seconds))
        trainer.should_stop = True


def commands(folder: str, data: list[str]) -> dict[str, list[str]]:
    """The measured commands, by the name the table gives them: arguments after ``python``; ``data`` adds data
    options to the fit (quick checks' tiny data)."""
    fit = ["-m", "lightning_cnn", "fit", "--config", RECIPE]
    return {
        "python -c 'import torch'": ["-c", "import torch"],
        "python -c 'import lightning'": ["-c", "import lightning"],
        "lightning-cnn --help": ["-m", "lightning_cnn", "--help"],
        f"lightning-cnn fit --config {RECIPE} --print_config": [*fit, "--print_config"],
        f"lightning-cnn fit --config {RECIPE}: start to the first training step": [
            *fit, "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", folder,
            "--trainer.limit_val_batches", "0", "--test_after_fit", "false", *data,
            "--trainer.callbacks+=benchmarks.startup.FirstStep",
        ],
    }  # fmt: skip


def seconds_of(command: list[str], first_step: Path) -> float:
    """Wall seconds of ``python COMMAND`` in a fresh process, or what ``FirstStep`` wrote when it ran."""
    first_step.unlink(missing_ok=True)
    wall = python_process(command, {START_ENV: repr(time.time()), FIRST_STEP_ENV: str(first_step)})
    return float(first_step.read_text()) if first_step.is_file() else wall


def startup(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """Each command ``ROUNDS`` times in turn (once in a quick check, ``in_process``); the median and the fastest.
    ``extra`` (the parts' common signature) is not used: the quick check's data options come from ``DATA_OPTIONS``."""
    rounds = 1 if in_process else ROUNDS
    with tempfile.TemporaryDirectory() as tmp:
        data = [arg for key, value in DATA_OPTIONS.items() for arg in (f"--data.{key}", str(value))]
        measured = commands(tmp, data)
        times: dict[str, list[float]] = {name: [] for name in measured}
        for _ in range(rounds):
            for name, command in measured.items():
                times[name].append(seconds_of(command, Path(tmp) / "first_step"))
    rows = [{"command": name, "median": statistics.median(t), "min": min(t)} for name, t in times.items()]
    return {"rounds": rounds, "rows": rows}


PARTS: dict[str, Callable[[list[str], bool], dict[str, Any]]] = {"startup": startup}
NEEDS_MNIST = ("startup",)
NEEDS_CIFAR_JPEG: tuple[str, ...] = ()


def md_startup(record: dict[str, Any]) -> list[str]:
    bare = next(row["median"] for row in record["rows"] if row["command"] == "python -c 'import lightning'")
    lines = ["| command | median | fastest | × `import lightning` |", "| --- | ---: | ---: | ---: |"]
    for row in record["rows"]:
        lines.append(
            f"| `{row['command']}` | {row['median']:.2f} s | {row['min']:.2f} s | {row['median'] / bare:.2f} |"
        )
    return [
        *lines,
        "",
        f"Each a fresh process, {record['rounds']} rounds in turn, timed to its exit; the first training step's time is"
        " from the process's start to the moment the first batch reaches the model, so it leaves out the interpreter's"
        " exit, which the others include.",
    ]


TITLES: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "startup": ("Start-up: our commands against bare imports", md_startup),
}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print(f"startup\nmachine: {machine()}")
    print("\n".join(md_startup(startup([], False))), flush=True)


if __name__ == "__main__":
    main()
