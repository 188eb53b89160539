"""``python -m lightning_cnn average RUN --last K``: the mean of the weights of a run's last K epoch checkpoints, as a
checkpoint ``RUN/checkpoints/average_lastK.ckpt`` that ``test``, ``predict-files``, ``ensemble`` and ``export`` take.

Averaging the weights of the last epochs (checkpoint averaging, the offline cousin of stochastic weight averaging)
tends to land nearer the middle of a flat region of the loss than any single epoch. A run keeps only its best and
last checkpoints by default, so the run must have been trained with ``--checkpoint.save_top_k -1``, which keeps
one checkpoint per epoch.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lightning_cnn.checkpoints import read_checkpoint
from lightning_cnn.errors import ConfigError
from lightning_cnn.run_folder import run_version
from lightning_cnn.tools.options import ToolParser, add_trust_option
from lightning_cnn.training.checkpoint_io import AtomicCheckpointIO

# the files of the run's checkpoint filename (cli.DEFAULTS' checkpoint.filename): epochNNN-<metric>[-vN].ckpt
EPOCH_FILE = re.compile(r"^epoch(\d+)-.*\.ckpt$")
KEEP_EVERY_EPOCH = "--checkpoint.save_top_k -1"  # the fit option that keeps one checkpoint per epoch


def run_checkpoints_folder(run: Path) -> Path:
    """The ``checkpoints`` folder of run folder ``run`` (``lightning_logs/version_N``, or that folder itself);
    anything else is one ``ConfigError`` line."""
    folder = run if run.name == "checkpoints" else run / "checkpoints"
    if not folder.is_dir() or run_version(folder.parent) < 0:
        raise ConfigError(f"average: {run} is not a run folder (lightning_logs/version_N with a checkpoints folder)")
    return folder


def epoch_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """The epoch checkpoints in ``folder`` as (epoch, file), by epoch; of an epoch saved twice (a resumed run
    writes ``...-v1.ckpt`` beside the first), the newer file."""
    newest: dict[int, Path] = {}
    for path in folder.glob("epoch*.ckpt"):
        found = EPOCH_FILE.match(path.name)
        if found:
            epoch = int(found[1])
            if epoch not in newest or path.stat().st_mtime_ns > newest[epoch].stat().st_mtime_ns:
                newest[epoch] = path
    return sorted(newest.items())


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of each floating-point tensor over ``states`` (summed in float64, then cast back to its dtype);
    other tensors (integer buffers such as batch norm's ``num_batches_tracked``) as in the last state."""
    last = states[-1]
    for state in states[:-1]:
        if state.keys() != last.keys() or any(state[k].shape != last[k].shape for k in last):
            raise ConfigError("average: the checkpoints hold different weights (names or shapes); were they one run's?")
    averaged = dict(last)
    for key, value in last.items():
        if torch.is_tensor(value) and value.is_floating_point():
            total = sum(state[key].double() for state in states)
            averaged[key] = (total / len(states)).to(value.dtype)
    return averaged


def average_last(run: Path, k: int, trust: bool = False) -> tuple[Path, list[int]]:
    """Write the average of run ``run``'s last ``k`` epoch checkpoints to ``checkpoints/average_last{k}.ckpt``,
    atomically and with its SHA-256 record like the run's own checkpoints; the last checkpoint's other entries
    (hyper-parameters, data module state) are kept, so every command loads it as a checkpoint of the run. Returns
    the file and the epochs averaged."""
    folder = run_checkpoints_folder(run)
    found = epoch_checkpoints(folder)
    if len(found) < k:
        raise ConfigError(
            f"average: {folder} holds {len(found)} epoch checkpoint(s) (epochNNN-*.ckpt), fewer than --last {k};"
            f" train with {KEEP_EVERY_EPOCH} to keep one per epoch"
        )
    chosen = found[-k:]
    checkpoints = [read_checkpoint(path, trust=trust) for _, path in chosen]
    averaged: dict[str, Any] = dict(checkpoints[-1])
    averaged["state_dict"] = average_state_dicts([c["state_dict"] for c in checkpoints])
    target = folder / f"average_last{k}.ckpt"
    AtomicCheckpointIO().save_checkpoint(averaged, target)
    return target, [epoch for epoch, _ in chosen]


def main(argv: Sequence[str]) -> None:
    parser = ToolParser(
        prog="lightning-cnn average",
        description="Average the weights of a run's last K epoch checkpoints into RUN/checkpoints/average_lastK.ckpt,"
        f" which test, predict-files, ensemble and export take with --ckpt_path. The run must have kept one"
        f" checkpoint per epoch: train it with {KEEP_EVERY_EPOCH}.",
    )
    parser.add_argument("run", type=Path, metavar="RUN", help="a run folder (lightning_logs/version_N)")
    parser.add_argument("--last", type=int, required=True, metavar="K", help="how many of the last epochs to average")
    add_trust_option(parser)
    args = parser.parse_args(list(argv))
    if args.last < 2:
        parser.error(f"--last must be at least 2 (the checkpoints to average), got {args.last}")
    target, epochs = average_last(args.run, args.last, args.trust_checkpoint)
    print(f"averaged epochs {', '.join(map(str, epochs))} into {target}; test it with:")
    print(f"  python -m lightning_cnn test --config {args.run / 'config.yaml'} --ckpt_path {target}")
    sys.stdout.flush()
