"""What the tools share on their command line: the argument parser and the ``--device`` and ``--trust_checkpoint``
options, so every tool takes its options and reports a usage mistake alike."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


class ToolParser(argparse.ArgumentParser):
    """A tool's argument parser: a usage mistake is one ``error:`` line and a hint, exit 2, as for ``fit``; options
    are never taken from abbreviations (``--member`` is not ``--members``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"allow_abbrev": False, **kwargs})

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(
            f"error: {self.prog}: {' '.join(message.split())}\nhint: '{self.prog} --help' lists every option\n"
        )
        sys.exit(2)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``: where a tool runs its model; ``auto`` is the GPU when there is one."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")


def add_resume_option(parser: argparse.ArgumentParser, tool: str, experiment: str, runs: str) -> None:
    """``--resume TOOL_DIR``: go on with the ``TOOL_*`` summary folder of an interrupted ``experiment``, whose
    finished ``runs`` are kept, as every tool that runs a fixed set of fits (kfold, repeat) offers."""
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar=f"{tool.upper()}_DIR",
        help=f"a {tool}_* folder of an interrupted {experiment}: keep its finished {runs}, run the missing ones",
    )


def _true_or_false(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    """``--trust_checkpoint [true]``: load checkpoints that hold more than weights and plain data (their unpickling
    can run code written into the file), as for the Lightning subcommands."""
    parser.add_argument(
        "--trust_checkpoint", nargs="?", const=True, default=False, type=_true_or_false, metavar="{true,false}",
        help="load a checkpoint that holds more than weights and plain data: only a file you trust",
    )  # fmt: skip


def add_calibrated_option(parser: argparse.ArgumentParser) -> None:
    """``--calibrated {true,false}``: use the temperature ``lightning-cnn calibrate`` stored beside the run, when there
    is one (the default), or the raw softmax."""
    parser.add_argument(
        "--calibrated", default=True, type=_true_or_false, metavar="{true,false}",
        help="divide the logits by the temperature of the run's calibration.json when it has one (default: true)",
    )  # fmt: skip


def add_tta_option(parser: argparse.ArgumentParser) -> None:
    """``--tta {true,false}``: average the softmax over the views of each image that the run's training augmentation
    implies (test-time augmentation, see ``lightning_cnn.data.tta``), or the image alone (the default)."""
    parser.add_argument(
        "--tta", default=False, type=_true_or_false, metavar="{true,false}",
        help="test-time augmentation: average the softmax over the mirror image and shifts of each image, as far as"
        " the run's training augmentation flips and crops (default: false)",
    )  # fmt: skip


def resolve_device(name: str) -> str:
    """The device ``--device NAME`` means: ``auto`` is ``cuda`` when a GPU is available, else ``cpu``."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
