"""``lightning-cnn runs [ROOT] [--csv]``: the runs under a root as a table, one line each.

Everything comes from what a run leaves in its folder: ``config.yaml`` (name, tags, model, data), ``last.ckpt``
(epochs trained, the best ``val/acc`` its checkpoint callback recorded) and ``metrics.json`` (``test/acc``). Runs
that differ only in their seed (``repeat``'s, or fits repeated by hand) share a ``group`` number, and each group's
``test/acc`` spread follows the table.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from lightning_cnn.checkpoints import read_checkpoint
from lightning_cnn.errors import ConfigError
from lightning_cnn.run_folder import LAST, RUNS_FOLDER, run_version, runs_under
from lightning_cnn.tools.options import ToolParser
from lightning_cnn.tools.tables import format_table

COLUMNS = ["version", "name", "tags", "model", "data", "differs", "group", "epochs", "best val/acc", "test/acc"]
SEED = "seed_everything"
COMPARED = ("seed_everything", "model", "data", "trainer")  # the sections whose options tell runs apart
# options that say where a run ran or how it is shown, not what it trained
NOT_COMPARED = {"trainer.default_root_dir", "trainer.logger", "trainer.callbacks", "trainer.enable_progress_bar"}


def _short(section: Any) -> str:
    path = section.get("class_path", "") if isinstance(section, dict) else ""
    return path.rsplit(".", 1)[-1]


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    """``{dotted key: value}`` of every leaf option (``init_args`` left out of keys, as on the command line)."""
    if not isinstance(value, dict):
        return {prefix: value}
    found: dict[str, Any] = {}
    for key, item in value.items():
        found |= _leaves(item, prefix if key == "init_args" else f"{prefix}.{key}" if prefix else str(key))
    return found


def _options(config: dict[str, Any]) -> dict[str, Any]:
    leaves = _leaves({key: config.get(key) for key in COMPARED}, "")
    return {key: value for key, value in leaves.items() if not key.startswith(tuple(NOT_COMPARED))}


def differences(configs: list[dict[str, Any]]) -> list[str]:
    """Each run's options that not every run listed shares, as ``name=value`` (fold, a trial's values, the
    seed...): what tells apart runs started from one config."""
    options = [_options(config) for config in configs]
    keys = sorted({key for each in options for key in each})
    varying = [key for key in keys if len({repr(each.get(key)) for each in options}) > 1]
    last = [key.rsplit(".", 1)[-1] for key in varying]
    names = {key: name if last.count(name) == 1 else key for key, name in zip(varying, last, strict=True)}
    return [", ".join(f"{names[key]}={each[key]}" for key in varying if key in each) for each in options]


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.yaml``, empty when it has none (yet)."""
    path = run_dir / "config.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    return config if isinstance(config, dict) else {}


def run_row(run_dir: Path) -> dict[str, Any]:
    """One run's line: what is missing (no checkpoint yet, never tested) is left empty."""
    config = run_config(run_dir)
    row: dict[str, Any] = {
        "version": run_version(run_dir),
        "name": config.get("run_name") or "",
        "tags": ", ".join(config.get("tags") or []),
        "model": _short(config.get("model")),
        "data": _short(config.get("data")),
        "differs": "",
        "group": "",
        "epochs": "",
        "best val/acc": "",
        "test/acc": "",
    }
    last = run_dir / "checkpoints" / LAST
    if last.is_file():
        try:
            checkpoint = read_checkpoint(last, mmap=True)
        except ConfigError:  # a damaged last.ckpt leaves its columns empty; the others still help
            checkpoint = {}
        if "epoch" in checkpoint:
            row["epochs"] = int(checkpoint["epoch"]) + 1
        for state in (checkpoint.get("callbacks") or {}).values():
            score = state.get("best_model_score") if isinstance(state, dict) else None
            if score is not None and state.get("monitor") == "val/acc":
                row["best val/acc"] = round(float(score), 4)
    if (run_dir / "metrics.json").is_file():
        test_acc = json.loads((run_dir / "metrics.json").read_text()).get("test/acc")
        row["test/acc"] = round(float(test_acc), 4) if test_acc is not None else ""
    return row


def list_runs(root: Path) -> list[dict[str, Any]]:
    """The rows of every ``version_N`` run folder under ``root`` (a ``default_root_dir`` or its ``lightning_logs``)."""
    runs = root if root.name == RUNS_FOLDER else runs_under(root)
    if not runs.is_dir():
        raise ConfigError(f"runs: no {RUNS_FOLDER} folder under {root}; give the --trainer.default_root_dir of runs")
    folders = sorted((p for p in runs.iterdir() if p.is_dir() and run_version(p) >= 0), key=run_version)
    rows = [run_row(folder) for folder in folders]
    configs = [run_config(folder) for folder in folders]
    for row, differs in zip(rows, differences(configs), strict=True):
        row["differs"] = differs
    for number, members in enumerate(seed_groups(configs), start=1):
        for index in members:
            rows[index]["group"] = number
    return rows


def seed_groups(configs: list[dict[str, Any]]) -> list[list[int]]:
    """The indexes of runs whose compared options are the same but for the seed, for each set of two or more
    runs with different seeds: the repeated runs of one recipe, in the order of their first run."""
    groups: dict[str, list[int]] = {}
    for index, config in enumerate(configs):
        options = _options(config)
        seed = options.pop(SEED, None)
        if config and seed is not None:
            groups.setdefault(repr(sorted(options.items())), []).append(index)
    seeds = [[_options(configs[i]).get(SEED) for i in members] for members in groups.values()]
    return [members for members, found in zip(groups.values(), seeds, strict=True) if len(set(map(repr, found))) > 1]


def group_summary(rows: list[dict[str, Any]]) -> list[str]:
    """A line per group of repeated runs: their versions and the spread of their test/acc."""
    lines = []
    for number in sorted({row["group"] for row in rows if row["group"] != ""}):
        members = [row for row in rows if row["group"] == number]
        versions = ", ".join(str(row["version"]) for row in members)
        tested = [float(row["test/acc"]) for row in members if row["test/acc"] != ""]
        spread = "not tested"
        if tested:
            std = statistics.stdev(tested) if len(tested) > 1 else 0.0
            spread = (f"test/acc min {min(tested):.4f}, mean {statistics.fmean(tested):.4f} ± {std:.4f},"
                      f" max {max(tested):.4f} over {len(tested)} tested")  # fmt: skip
        lines.append(f"group {number}: versions {versions}, the same options but for the seed; {spread}")
    return lines


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned text, numbers on the right."""
    cells = [[str(row[c]) for c in COLUMNS] for row in rows]
    return format_table(COLUMNS, cells, right={"version", "group", "epochs", "best val/acc", "test/acc"})


def main(argv: list[str] | None = None) -> None:
    """``lightning-cnn runs [ROOT] [--csv]``."""
    parser = ToolParser(prog="lightning-cnn runs", description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path("."), help="a default_root_dir (default: .)")
    parser.add_argument("--csv", action="store_true", help="write CSV instead of a table")
    args = parser.parse_args(argv)
    rows = list_runs(args.root)
    if args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print("\n".join([table(rows), *group_summary(rows)]))


if __name__ == "__main__":
    main()
