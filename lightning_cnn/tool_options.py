"""What the tools share: their argument parser, the ``--device`` option and how their results are printed (aligned
tables) and saved (CSV), so every tool looks and behaves alike."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Collection, Sequence
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


def resolve_device(name: str) -> str:
    """The device ``--device NAME`` means: ``auto`` is ``cuda`` when a GPU is available, else ``cpu``."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def format_value(value: Any) -> str:
    """A cell of a results table: floats with 4 significant decimals, everything else as text."""
    if isinstance(value, float):
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.3g}"
    return "" if value is None else str(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Collection[str] = ()) -> str:
    """Rows under a header in aligned columns, for printing; the columns named in ``right`` align right."""
    cells = [list(header)] + [[format_value(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if name in right else cell.ljust(w) for name, cell, w in zip(header, row, widths, strict=True)
        ).rstrip()
        for row in cells
    )


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``rows`` under ``header`` as CSV at full precision."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
