"""Framework overhead counted in CPU instructions: one training step of ``lightning_cnn fit`` against one of bare
Lightning (LeNet-5 on MNIST, batch 64, 1 thread), counted by valgrind's callgrind.

On a shared or virtual CPU the wall time of the same Lightning epoch moves by several per cent from one run to the
next, more than the difference being measured; the number of instructions a step executes does not. Each side
runs in a fresh process under callgrind twice, for ``FEW`` and for ``MANY`` training steps: the difference over the
extra steps is the cost of a step without the start-up. (Instructions are not time: cache misses and the like are
not counted; ``benchmarks/overhead.py`` measures the time.)

    python -m benchmarks.instructions        # 4 runs under valgrind, two at a time: about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import ROOT, machine, mnist

FEW, MANY = 5, 55  # training steps of the two runs of each side: 50 apart, as the steps between two log writes
SIDES = ("bare Lightning", "lightning_cnn fit")
OURS = ["--model", "LeNet5", "--model.optimizer", "Adam", "--model.optimizer.lr", "0.002", "--data", "MNISTDataModule",
        "--data.batch_size", "64"]  # fmt: skip


def train(side: str, steps: int) -> None:
    """``steps`` training steps of one side, in this process, with 1 torch thread (the child that valgrind runs)."""
    from benchmarks.common import fit_epoch_seconds
    from benchmarks.overhead import bare_lightning_seconds
    from lightning_cnn.models import LeNet5

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if side == SIDES[0]:
            dm = mnist(batch_size=64)
            model = LeNet5(num_classes=dm.num_classes, input_shape=dm.input_shape)
            bare_lightning_seconds(model, dm, torch.optim.Adam, {"lr": 0.002}, steps)
        else:
            fit_epoch_seconds(OURS, Path(tmp), steps)


def counted(side: str, steps: int, out: Path) -> subprocess.Popen:
    """Start ``train(side, steps)`` in a fresh process under callgrind, writing its counts to ``out``."""
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
               "benchmarks.instructions", "--child", side, str(steps)]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def total_instructions(out: Path) -> int:
    """The instructions a callgrind output file counted in all (its ``totals:`` line)."""
    return int(re.search(r"^totals: (\d+)", out.read_text(), flags=re.MULTILINE)[1])


def measure(quick: bool = False) -> dict:
    """Instructions per training step of each side (``quick``: each side trains 1 and 2 steps in this process,
    uncounted: checks the code, counts nothing)."""
    if quick:
        for side in SIDES:
            for steps in (1, 2):
                train(side, steps)
        return {"few": 1, "many": 2, "rows": [{"side": side, "per_step": None} for side in SIDES]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in SIDES:  # the two runs of a side at once: one per core
            outs = {steps: Path(tmp) / f"{SIDES.index(side)}.{steps}" for steps in (FEW, MANY)}
            runs = {steps: counted(side, steps, out) for steps, out in outs.items()}
            for steps, run in runs.items():
                if run.wait() != 0:
                    raise RuntimeError(f"{side}, {steps} steps, under valgrind failed:\n{run.stderr.read()[-2000:]}")
            few, many = (total_instructions(outs[steps]) for steps in (FEW, MANY))
            rows.append({"side": side, "few": few, "many": many, "per_step": (many - few) / (MANY - FEW)})
    return {"few": FEW, "many": MANY, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        train(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind (apt install valgrind)")
    print(f"instructions per training step, LeNet-5 on MNIST, 1 thread\nmachine: {machine()}")
    record = measure()
    for row in record["rows"]:
        print(f"{row['side']}: {row['per_step'] / 1e6:.2f} M instructions per step")
    bare, ours = (row["per_step"] for row in record["rows"])
    print(f"ours / bare Lightning (in steps per instruction): {bare / ours:.4f}")


if __name__ == "__main__":
    main()
