"""Bagging: ``python -m lightning_cnn bag --members K --config CONFIG [fit options]``.

Member k trains on a bootstrap resample of the training split (``data.bootstrap_seed k``: as many images as the
split, drawn with replacement) with its own training seed (``seed_everything k``, unless given); the validation
split is the same for all, so ``ensemble`` can fit its stacking on it. Every member is an ordinary run in
``lightning_logs/version_N``; ``bag.json`` in ``lightning_logs/bag_<date-time>/`` records them (rewritten after every
member), and the ``ensemble`` command that evaluates them is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_cnn.config_files import option_given
from lightning_cnn.errors import ConfigError
from lightning_cnn.experiments.runner import run_fit, runs_folder
from lightning_cnn.run_folder import claim_folder
from lightning_cnn.tools.options import ToolParser
from lightning_cnn.tools.tables import format_table


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = ToolParser(
        prog="lightning-cnn bag",
        description="Bagging: train K members, each on a bootstrap resample of the training split, then evaluate"
        " them with 'lightning-cnn ensemble'. Every other option is a fit option (see 'lightning-cnn fit --help').",
    )
    parser.add_argument("--members", type=int, default=5, help="number of members K (default: %(default)s)")
    parser.add_argument("--first_seed", type=int, default=0, help="member k uses seed FIRST_SEED + k (default: 0)")
    args, fit_args = parser.parse_known_args(list(argv))
    if args.members < 2:
        raise ConfigError(f"--members must be at least 2, got {args.members}")
    if option_given(fit_args, "data.bootstrap_seed"):
        raise ConfigError("bag sets --data.bootstrap_seed for every member itself; leave it out (--first_seed N)")
    return args, fit_args


def member_args(fit_args: list[str], seed: int) -> list[str]:
    """The fit options of the member with ``seed``: its bootstrap resample, and its training seed unless given."""
    args = [*fit_args, "--data.bootstrap_seed", str(seed)]
    if not option_given(fit_args, "seed_everything"):
        args += ["--seed_everything", str(seed)]
    return args


def main(argv: Sequence[str]) -> None:
    """Train every member, then print the table of their validation metrics and the ensemble command."""
    args, fit_args = parse_args(argv)
    runs_root = runs_folder(member_args(fit_args, args.first_seed))  # every option checked before the first member
    if option_given(fit_args, "seed_everything"):
        print("bag: the --seed_everything given is every member's training seed; only their bootstrap resamples"
              " differ (leave it out for training seeds FIRST_SEED + k)", file=sys.stderr)  # fmt: skip
    folder: Path | None = None
    members: list[dict[str, Any]] = []
    start = time.monotonic()
    for k in range(args.members):
        seed = args.first_seed + k
        print(f"bag: member {k + 1} of {args.members} (bootstrap seed {seed})", file=sys.stderr, flush=True)
        result = run_fit(member_args(fit_args, seed))
        members.append({"bootstrap_seed": seed, "run_dir": str(result.log_dir), "metrics": result.metrics})
        folder = folder or claim_folder(runs_root, "bag")
        record = {"members": args.members, "fit_args": fit_args, "wall_time_s": round(time.monotonic() - start, 1),
                  "runs": members}  # fmt: skip
        (folder / "bag.json").write_text(json.dumps(record, indent=2) + "\n")
    assert folder is not None
    names = sorted(set.intersection(*(set(m["metrics"]) for m in members)))
    rows = [[m["bootstrap_seed"], *(m["metrics"][n] for n in names), m["run_dir"]] for m in members]
    print(f"\nbagging: {args.members} members on bootstrap resamples ({time.monotonic() - start:.0f} s):")
    print(format_table(["bootstrap_seed", *names, "run"], rows))
    print(f"saved {folder / 'bag.json'}; evaluate the members, their average and their stacking with:")
    runs = " ".join(shlex.quote(m["run_dir"]) for m in members)
    print(f"  lightning-cnn ensemble --ckpt_path {runs} --output {shlex.quote(str(folder / 'ensemble.json'))}")
