"""How the tools show and keep their results: aligned text tables to print, CSV files at full precision, so every
tool's output reads alike."""

from __future__ import annotations

import csv
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any


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
