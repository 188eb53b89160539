"""Audit a dataset: ``python -m lightning_cnn audit --config CONFIG [--folds 3] [fit options]``.

Reads the configured data module's splits whole and writes into ``lightning_logs/audit_<date-time>/`` (or
``--output``): ``duplicates.csv`` (exact and near-duplicate pairs by perceptual hash, train/test leaks first),
``audit.csv`` (every training image's out-of-fold probability of its given label from a ``--folds``-fold run, the
least believed first: ``index,file,given,suggested,score``), ``audit.json`` (the summary: unreadable files, class
balance per split, duplicate and label counts) and the grids ``duplicates.png`` and ``suspects.png``. Every other
option is a fit option for the folds' runs (``--trainer.max_epochs 1`` keeps them short). ``fit --exclude
AUDIT_DIR/audit.csv --top N`` then trains without the N likeliest label errors.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from lightning_cnn.config_files import option_given
from lightning_cnn.errors import ConfigError
from lightning_cnn.experiments.audit import AuditOptions, build_datamodule, read_dataset, run_audit, summary
from lightning_cnn.run_folder import claim_folder
from lightning_cnn.tools.kfold import MAX_FOLDS
from lightning_cnn.tools.options import ToolParser


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = ToolParser(
        prog="lightning-cnn audit",
        description="Find exact and near-duplicate images (train/test leaks first), unreadable files, the class"
        " balance and the likeliest label errors of the configured dataset. Every other option is a fit option for"
        " the k-fold runs of the label check (see 'python -m lightning_cnn fit --help').",
    )
    parser.add_argument("--folds", type=int, default=3, help="folds of the label check's cross-validation (default 3)")
    parser.add_argument(
        "--labels",
        choices=("true", "false"),
        default="true",
        help="run the label check (k-fold training); false: duplicates, files and balance only",
    )
    parser.add_argument(
        "--hamming",
        type=int,
        default=4,
        help="near duplicates: at most this many of the 63 hash bits differ (0 to 63, default 4)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="near duplicates: at most this pixel difference (L1 over the images' own spread; 0 for"
        " identical pixels, default 0.05)",
    )
    parser.add_argument("--grid", type=int, default=32, help="images in each PNG grid (0: no grids; default 32)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="DIR",
        help="the folder to write (default: lightning_logs/audit_<date-time> of the runs' root)",
    )
    args, fit_args = parser.parse_known_args(list(argv))
    if not 2 <= args.folds <= MAX_FOLDS:
        raise ConfigError(f"--folds must be from 2 to {MAX_FOLDS} (one fit per fold), got {args.folds}")
    if not 0 <= args.hamming <= 63:
        raise ConfigError(f"--hamming must be from 0 to 63 (bits of the hash), got {args.hamming}")
    if not 0 <= args.tolerance < float("inf"):
        raise ConfigError(f"--tolerance must be 0 or more (0: identical pixels only), got {args.tolerance}")
    if not 0 <= args.grid <= 400:
        raise ConfigError(f"--grid must be from 0 to 400 images, got {args.grid}")
    for key in ("data.fold", "data.num_folds", "exclude", "top"):
        if option_given(fit_args, key):
            raise ConfigError(f"audit checks the whole training set and sets its own folds; leave --{key} out")
    return args, fit_args


def main(argv: Sequence[str]) -> None:
    """Read the dataset, audit it, save and print the findings."""
    args, fit_args = parse_args(argv)
    datamodule, runs_root = build_datamodule(fit_args)  # every option checked before anything is read or written
    data = read_dataset(datamodule)
    if args.output is not None and args.output.exists() and any(args.output.iterdir()):
        raise ConfigError(f"--output: {args.output} is not empty; give a new folder")
    folder = args.output or claim_folder(runs_root, "audit")
    folder.mkdir(parents=True, exist_ok=True)
    options = AuditOptions(args.folds, args.labels == "true", args.hamming, args.tolerance, args.grid)
    record = run_audit(fit_args, folder, data, options)
    print(summary(record, folder))
