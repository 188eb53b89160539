"""Tuning: ``python -m lightning_cnn tune --config CONFIG [--batch_size] [fit options]``.

Lightning's learning-rate finder (``Tuner.lr_find``) runs a range test on the configured model and data: 100
training steps whose learning rate grows exponentially from 1e-8 to 1, stopped once the smoothed loss is 4 × its
best; the suggestion is the learning rate of its steepest descent. With ``--batch_size`` Lightning's batch-size
scaler (``Tuner.scale_batch_size``) runs first, doubling the configured batch size while a few steps still fit in
memory, and the range test then runs at the batch size found (the learning rate depends on it).

Everything goes into a new folder ``lightning_logs/tune_<date-time>/`` beside the runs (under
``trainer.default_root_dir``): ``lr.yaml``, the config fragment that sets exactly what was found (the optimizer's
``lr``, or the ``max_lr`` of a one-cycle schedule; ``data.init_args.batch_size``), to be given to ``fit`` after the
recipe; ``lr.png``, the loss against the learning rate with the suggestion marked; ``tune.json``, the whole curve;
and TensorBoard events with the curve and the figure. ``--output FILE`` also writes the fragment to FILE and the
figure beside it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import yaml

from lightning_cnn.cli import cli_main
from lightning_cnn.config_files import check_config_files
from lightning_cnn.errors import ConfigError
from lightning_cnn.experiments.runner import tool_command_line
from lightning_cnn.run_folder import RUNS_FOLDER, claim_folder
from lightning_cnn.tools.options import ToolParser
from lightning_cnn.training.loggers import save_png
from lightning_cnn.training.tuning import (
    LrSearch,
    check_tunable,
    configured_lr,
    find_lr,
    lr_figure,
    lr_fragment,
    lr_key,
    scale_batch_size,
)

FRAGMENT, FIGURE, RECORD = "lr.yaml", "lr.png", "tune.json"
MIN_STEPS = 15  # Lightning's suggestion skips the first 10 points and the last one, and needs a slope


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = ToolParser(
        prog="lightning-cnn tune",
        description="Lightning's learning-rate finder (and with --batch_size its batch-size scaler first) on a"
        " config; writes the config fragment to give fit after the recipe. Every other option is a fit option"
        " (see 'lightning-cnn fit --help').",
    )
    parser.add_argument(
        "--batch_size",
        action="store_true",
        help="scale the batch size first (Tuner.scale_batch_size), then find the learning rate at it",
    )
    parser.add_argument(
        "--batch_size_mode",
        choices=("power", "binsearch"),
        default="power",
        help="power: double until out of memory; binsearch: then bisect (default: power)",
    )
    parser.add_argument(
        "--max_batch_size",
        type=int,
        default=8192,
        help="the scaler stops here (on a CPU nothing runs out of memory; default: 8192)",
    )
    parser.add_argument("--steps_per_trial", type=int, default=3, help="training steps per batch size tried")
    parser.add_argument("--min_lr", type=float, default=1e-8, help="the learning rate the search starts at")
    parser.add_argument("--max_lr", type=float, default=1.0, help="the learning rate the search ends at")
    parser.add_argument("--num_training", type=int, default=100, help="steps of the search (default: 100)")
    parser.add_argument("--output", type=Path, default=None, metavar="FILE.yaml",
                        help="also write the fragment here, and the figure beside it as FILE.png")  # fmt: skip
    args, fit_args = parser.parse_known_args(list(argv))
    if not any(a == "--config" or a.startswith("--config=") for a in fit_args) and not fit_args:
        parser.error("give the recipe to tune, e.g. --config configs/mnist/lenet5.yaml")
    if not 0 < args.min_lr < args.max_lr:
        parser.error(f"--min_lr and --max_lr must satisfy 0 < min_lr < max_lr, got {args.min_lr:g} and {args.max_lr:g}")
    if args.num_training < MIN_STEPS:
        parser.error(f"--num_training must be at least {MIN_STEPS} (a suggestion needs more points), got"
                     f" {args.num_training}")  # fmt: skip
    if args.max_batch_size < 1 or args.steps_per_trial < 1:
        parser.error("--max_batch_size and --steps_per_trial must be 1 or more")
    if args.output is not None and args.output.suffix not in (".yaml", ".yml"):
        parser.error(f"--output must name a .yaml file (a config fragment), got {args.output}")
    return args, fit_args


def build(fit_args: list[str]) -> Any:
    """The CLI built from the fit options without a subcommand: every option checked, model, data module and
    trainer built, nothing written (as the experiment tools check a config before their runs)."""
    with tool_command_line(quiet=True):
        return cli_main(check_config_files(fit_args), run=False)


def runs_root(trainer: L.Trainer) -> Path:
    """The ``lightning_logs`` folder of the configured trainer, where the tune folder goes beside the runs."""
    root = getattr(trainer.logger, "root_dir", None)
    return Path(root) if root else Path(trainer.default_root_dir) / RUNS_FOLDER


def fragment_text(fragment: dict[str, Any], search: LrSearch, configured: float | None, fit_args: list[str],
                  path: Path) -> str:  # fmt: skip
    """The fragment as YAML, opened by comments on what was found and the fit command that uses it."""
    recipe = f" (the config gives {configured:g})" if configured is not None else ""
    lines = [
        f"# lightning-cnn tune: suggested learning rate {search.suggestion:.3g}{recipe}, the steepest descent of the",
        f"# loss in a {search.steps}-step range test"
        + (f" at batch size {search.batch_size}" if search.batch_size else "")
        + ". Train with it:",  # fmt: skip
        f"#   lightning-cnn fit {shlex.join([*fit_args, '--config', str(path)])}",
    ]
    return "\n".join(lines) + "\n" + yaml.safe_dump(fragment, sort_keys=False)


def log_tensorboard(folder: Path, search: LrSearch, image: Any, summary: str) -> None:
    """The curve as scalars (``tune/loss`` and ``tune/lr`` by step of the search), the figure and the summary as
    TensorBoard events in the tune folder, which ``tensorboard --logdir lightning_logs`` shows beside the runs."""
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = TensorBoardLogger(save_dir=str(folder), name="", version="", default_hp_metric=False)
    for step, (lr, loss) in enumerate(zip(search.lrs, search.losses, strict=True)):
        values = {"tune/lr": lr, **({"tune/loss": loss} if loss == loss and abs(loss) != float("inf") else {})}
        logger.log_metrics(values, step=step)
    logger.experiment.add_image("tune/lr_find", image, 0, dataformats="HWC")
    logger.experiment.add_text("tune", summary, 0)
    logger.finalize("success")


def main(argv: Sequence[str]) -> None:
    """Scale the batch size (with ``--batch_size``), find the learning rate, write the tune folder."""
    args, fit_args = parse_args(argv)
    cli = build(fit_args)
    config, model, datamodule = cli.config, cli.model, cli.datamodule
    check_tunable(config, datamodule, args.batch_size)
    options = dict(cli.config_init.get("trainer") or {})
    configured_batch = getattr(datamodule, "batch_size", None)
    seed = config.get("seed_everything")
    with tempfile.TemporaryDirectory(prefix="lightning-cnn-tune-") as scratch, tool_command_line(quiet=True):
        if args.batch_size:
            print(f"tune: scaling the batch size from {configured_batch} ({args.batch_size_mode}, at most"
                  f" {args.max_batch_size})", file=sys.stderr, flush=True)  # fmt: skip
            scale_batch_size(model, datamodule, options, Path(scratch), args.batch_size_mode, args.steps_per_trial,
                             args.max_batch_size)  # fmt: skip
            if isinstance(seed, int):
                L.seed_everything(seed, verbose=False)  # the range test as without the scaler
        print(f"tune: learning-rate range test, {args.num_training} steps from {args.min_lr:g} to {args.max_lr:g}",
              file=sys.stderr, flush=True)  # fmt: skip
        search = find_lr(model, datamodule, options, Path(scratch), args.min_lr, args.max_lr, args.num_training)
    if search.suggestion is None:
        stopped = search.steps < args.num_training
        advice = "a lower --max_lr (the loss rose to 4 × its best)" if stopped else "more --num_training"
        raise ConfigError(f"tune: the range test ran {search.steps} steps, too few for a suggestion; give {advice}")
    model_config = config["model"]
    configured = configured_lr(model_config)
    fragment = lr_fragment(model_config, float(f"{search.suggestion:.3g}"))
    if args.batch_size:
        fragment["data"] = {"init_args": {"batch_size": search.batch_size}}

    folder = claim_folder(runs_root(cli.trainer), "tune")
    section, argument = lr_key(model_config)
    key = f"model.init_args.{section}.init_args.{argument}"
    image = lr_figure(search, configured, title=type(model).__name__)
    targets = [(folder / FRAGMENT, folder / FIGURE)]
    if args.output is not None:
        targets.append((args.output, args.output.with_suffix(".png")))
    for fragment_path, figure_path in targets:
        fragment_path.parent.mkdir(parents=True, exist_ok=True)
        fragment_path.write_text(fragment_text(fragment, search, configured, fit_args, fragment_path))
        save_png(image, figure_path)
    record = {
        "fit_args": fit_args,
        "key": key,
        "suggested_lr": search.suggestion,
        "configured_lr": configured,
        "batch_size": search.batch_size,
        "configured_batch_size": configured_batch,
        "scaled_batch_size": args.batch_size,
        "min_lr": args.min_lr,
        "max_lr": args.max_lr,
        "num_training": args.num_training,
        "steps": search.steps,
        "lr": search.lrs,
        "loss": [loss if loss == loss else None for loss in search.losses],
    }
    (folder / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    recipe = f"; the config gives {configured:g}" if configured is not None else ""
    summary = f"suggested learning rate {search.suggestion:.3g} ({key}{recipe}), from {search.steps} steps"
    if args.batch_size:
        summary += f"\nbatch size {search.batch_size} (data.init_args.batch_size; the config gives {configured_batch})"
    log_tensorboard(folder, search, image, summary)
    fragment_path = targets[-1][0]
    print(summary)
    print(f"wrote {folder / FRAGMENT}, {FIGURE}, {RECORD} and TensorBoard events"
          + (f"; and {args.output} with {args.output.with_suffix('.png').name}" if args.output else ""))  # fmt: skip
    print(f"train with it: lightning-cnn fit {shlex.join([*fit_args, '--config', str(fragment_path)])}")
