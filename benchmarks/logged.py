"""Reading back what a run sent to each logger, with each logger's own files: CSV's metrics.csv, MLflow's file
store, and a W&B offline run's ``.wandb`` log."""

from __future__ import annotations

import csv
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def csv_series(run_dir: Path, key: str) -> list[float]:
    """The values of ``key`` in the run folder's metrics.csv, in order."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


def mlflow_run(root: Path) -> tuple[Any, Any]:
    """The one MLflow run of the file store ``<root>/mlruns``, and its client."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"file:{root / 'mlruns'}")
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    (run,) = client.search_runs([experiment.experiment_id])
    return run, client


def _wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of a W&B ``.wandb`` file: a 7-byte header, then a LevelDB-style log of 32 KiB blocks
    whose records (4-byte CRC, 2-byte length, 1-byte type) may be split across blocks."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room left for a record header: the block is padded
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_offline_run(root: Path) -> dict[str, Any]:
    """The W&B offline run under ``<root>/wandb``: its name, tags, history of each metric, summary, config keys
    and artifacts (name → files)."""
    (path,) = (root / "wandb").glob("offline-run-*/run-*.wandb")
    run: dict[str, Any] = {"history": {}, "summary": {}, "config": set(), "artifacts": {}}
    for record in _wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["name"], run["tags"] = record.run.display_name, list(record.run.tags)
        elif kind == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                run["history"].setdefault(key, []).append(json.loads(item.value_json))
        elif kind == "summary":
            for item in record.summary.update:
                run["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "config":
            run["config"] |= {item.key or "/".join(item.nested_key) for item in record.config.update}
        elif kind == "artifact":
            run["artifacts"][record.artifact.type] = [entry.path for entry in record.artifact.manifest.contents]
    return run
