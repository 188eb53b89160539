"""Logs a person can read: the size and the epoch lines of a 3-epoch LeNet-5 fit whose output goes to a file.

    python -m benchmarks.plain_logs

When output is not a terminal, training writes one line per epoch instead of progress-bar redraws; this runs the
main recipe with stdout and stderr redirected to one file, as CI jobs and batch scripts do, and reads the file.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, machine

RECIPE = "configs/mnist/lenet5.yaml"
EPOCH_LINE = re.compile(r"^epoch \d+(/\d+)? done\b")  # the line written when an epoch ends


def measure(extra: list[str] | None = None) -> dict:
    """Bytes, lines and epoch lines of the whole output of one fit of the recipe written to a file."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "fit.log"
        with log.open("w") as out:
            done = subprocess.run([sys.executable, "-m", "lightning_cnn", "fit", "--config", str(ROOT / RECIPE),
                                   "--trainer.default_root_dir", tmp, *(extra or [])], cwd=ROOT, stdout=out,
                                  stderr=subprocess.STDOUT)  # fmt: skip
        text = log.read_text()
        if done.returncode != 0:
            raise RuntimeError(f"fit {RECIPE} failed:\n{text[-2000:]}")
    lines = text.splitlines()
    epochs = [line for line in lines if EPOCH_LINE.match(line)]
    return {"config": RECIPE, "bytes": len(text.encode()), "lines": len(lines), "epoch_lines": epochs}


def main() -> None:
    print(f"plain logs: {RECIPE} with its output in a file\nmachine: {machine()}")
    record = measure()
    print(f"{record['bytes']:,} bytes, {record['lines']} lines, {len(record['epoch_lines'])} epoch lines:")
    print("\n".join(record["epoch_lines"]))


if __name__ == "__main__":
    main()
