"""Training without an audit's top suspects: ``fit --exclude audit.csv --top N`` drops the first N rows of the
``audit.csv`` that ``lightning-cnn audit`` wrote from the training split.

The rows' ``index`` counts the images of the data module's whole training set in the order it reads them (before
the validation split); ``audit.json`` beside the file records how many images that set held and a digest of their
labels, and every row its ``given`` label, so an audit of another dataset (or another order) is refused in one line
instead of dropping the wrong images.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lightning_cnn.errors import ConfigError

COLUMNS = ("index", "file", "given", "suggested", "score")


def labels_digest(labels: Tensor) -> str:
    """A SHA-256 of a training set's labels in order: what tells one dataset (and order) from another."""
    return hashlib.sha256(labels.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()


@dataclass(frozen=True)
class Exclusion:
    """The training images an audit's first ``top`` rows name, with what the audit recorded of its dataset."""

    source: Path
    indices: Tensor
    given: tuple[str, ...]
    images: int | None = None
    digest: str | None = None

    def check(self, labels: Tensor, classes: Sequence[str]) -> None:
        """Refuse, in one line, an audit of another training set than the one whose labels are ``labels``."""
        hint = "run 'lightning-cnn audit' with this config again, or leave --exclude out"
        if self.images is not None and self.images != len(labels):
            raise ConfigError(
                f"--exclude: {self.source} audited {self.images} training images, this dataset has {len(labels)};"
                f" {hint}"
            )
        if self.digest is not None and self.digest != labels_digest(labels):
            raise ConfigError(f"--exclude: {self.source} audited other training labels than this dataset's; {hint}")
        if len(self.indices) and int(self.indices.max()) >= len(labels):
            raise ConfigError(
                f"--exclude: {self.source} names image {int(self.indices.max())}, this training set has {len(labels)}"
                f" images (0 to {len(labels) - 1}); {hint}"
            )
        names = [str(c) for c in classes]
        for index, given in zip(self.indices.tolist(), self.given, strict=True):
            if given != names[int(labels[index])]:
                raise ConfigError(
                    f"--exclude: {self.source} says image {index} is labelled {given!r}, this dataset labels it"
                    f" {names[int(labels[index])]!r}; {hint}"
                )

    def drop(self, train: Tensor, labels: Tensor, classes: Sequence[str]) -> Tensor:
        """The training-split indices ``train`` without the excluded images (checked against ``labels`` first)."""
        self.check(labels, classes)
        return train[~torch.isin(train, self.indices)]


def read_exclusion(path: str | Path, top: int) -> Exclusion:
    """The first ``top`` rows of an audit's CSV (and what its ``audit.json`` recorded), or one line saying what is
    wrong with the file."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("index", "given") if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(
                    f"--exclude: {path} has no column {', '.join(missing)}; give the audit.csv that 'lightning-cnn"
                    f" audit' wrote (columns {','.join(COLUMNS)})"
                )
            rows = [row for _, row in zip(range(top), reader, strict=False)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        message = f"--exclude: cannot read {path} ({err}); give the audit.csv that 'lightning-cnn audit' wrote"
        raise ConfigError(message) from None
    if len(rows) < top:
        raise ConfigError(f"--exclude: --top {top} but {path} has {len(rows)} rows; give --top 0 to {len(rows)}")
    indices = []
    for number, row in enumerate(rows, start=2):
        text = (row.get("index") or "").strip()
        if not text.isdigit():
            raise ConfigError(f"--exclude: {path} line {number}: index {text!r} is not a training image number")
        indices.append(int(text))
    images, digest = recorded_dataset(path.parent / "audit.json")
    given = tuple((row.get("given") or "").strip() for row in rows)
    return Exclusion(path, torch.tensor(indices, dtype=torch.long), given, images, digest)


def recorded_dataset(record: Path) -> tuple[int | None, str | None]:
    """The training-set size and labels digest an ``audit.json`` recorded (None, None without the file)."""
    if not record.is_file():
        return None, None
    try:
        dataset = json.loads(record.read_text())["dataset"]
        return int(dataset["training_images"]), str(dataset["labels_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"--exclude: {record} is not an audit record ({err}); remove it or audit again") from None
