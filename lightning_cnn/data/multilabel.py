"""MultiLabelImageFolder: images listed in CSV files with a set of labels each (multi-label classification).

Each CSV has the columns ``file,labels``: a path relative to ``root`` and the image's labels separated by spaces (the
Kaggle format, e.g. ``a/0001.png,cat dog``). The images are decoded, cached and held in memory exactly as an image
folder's (``lightning_cnn.data.image_folder``); the targets are multi-hot float tensors (N, labels). The module says
``multi_label = True``, which the CLI links into the model: it then trains one logit per label with binary
cross-entropy (``lightning_cnn.models.multilabel``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_cnn.data.augment import BatchAugmentation
from lightning_cnn.data.base import DATAMODULES
from lightning_cnn.data.image_files import resolve_cache_dir
from lightning_cnn.data.image_folder import ImageFolderDataModule
from lightning_cnn.data.mix import BatchMix
from lightning_cnn.errors import ConfigError, DataNotFoundError

COLUMNS = ("file", "labels")


def read_label_csv(path: Path, root: Path, key: str) -> list[tuple[str, list[str]]]:
    """The (file, labels) rows of a ``file,labels`` CSV, each file checked to exist under ``root``; a ConfigError
    naming the CSV (option ``key``) and the line of the first bad row: missing columns, an empty file name or label
    set, a file listed twice, a file that is not there."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [name for name in COLUMNS if name not in header]
            if missing:
                raise ConfigError(
                    f"{key}: {path} has no column {', '.join(missing)} (its header: {','.join(header) or 'none'});"
                    " the first line must be file,labels"
                )
            reader.fieldnames = header
            rows: list[tuple[str, list[str]]] = []
            seen: dict[str, int] = {}
            for line, row in enumerate(reader, start=2):
                name, labels = (row.get("file") or "").strip(), (row.get("labels") or "").split()
                if not name:
                    raise ConfigError(f"{key}: {path} line {line} has no file name; give file,labels on every row")
                if not labels:
                    raise ConfigError(
                        f"{key}: {path} line {line} ({name}) has no labels; give at least one, separated by spaces"
                    )
                if name in seen:
                    raise ConfigError(
                        f"{key}: {path} line {line} lists {name} again (first on line {seen[name]}); list each file"
                        " once, with all its labels"
                    )
                seen[name] = line
                if not (root / name).is_file():
                    raise ConfigError(
                        f"{key}: {path} line {line}: no file {name} under data.root {root}; fix the path (relative to"
                        " data.root) or remove the row"
                    )
                rows.append((name, labels))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"{key}: cannot read {path} as a CSV ({err})") from err
    if not rows:
        raise ConfigError(f"{key}: {path} lists no images; give one file,labels row per image")
    return rows


def multi_hot(rows: list[tuple[str, list[str]]], classes: tuple[str, ...], path: Path, key: str) -> Tensor:
    """The (N, classes) float multi-hot targets of ``rows``; a ConfigError naming the line of a label not in
    ``classes``."""
    index = {name: i for i, name in enumerate(classes)}
    targets = torch.zeros(len(rows), len(classes))
    for row, (name, labels) in enumerate(rows):
        unknown = [label for label in labels if label not in index]
        if unknown:
            raise ConfigError(
                f"{key}: {path} line {row + 2} ({name}) has labels {unknown} that are not among the classes"
                f" {', '.join(classes)}; add them to data.classes or fix the row"
            )
        targets[row, [index[label] for label in labels]] = 1.0
    return targets


@DATAMODULES.register
class MultiLabelImageFolder(ImageFolderDataModule):
    """Images under ``root`` listed with their label sets in ``train_csv`` (and ``test_csv``).

    Classes are the sorted union of the training CSV's labels, or ``classes`` in the order given. The validation
    split is drawn (seeded) from the training CSV's images; the other options are the image folder's.

    Args:
        root: the folder the CSVs' file paths are relative to (or a ``.tar.gz`` / ``.tgz`` / ``.tar`` of it); a
            relative path is looked for in the current folder, then in ``data_dir``.
        train_csv: the CSV of the training (and validation) images, ``file,labels``; a relative path is looked for
            in the current folder, then in ``root``.
        test_csv: the CSV of the test images, as ``train_csv``.
        classes: the label names in order; default the sorted labels of ``train_csv``.
        image_size: see ``ImageFolderDataModule``.
        grayscale: see ``ImageFolderDataModule``.
        mean, std: see ``ImageFolderDataModule``.
        cache_dir, cache, decode_workers, data_dir, download: see ``ImageFolderDataModule``.
        batch_size, eval_batch_size, num_workers, val_size, split_seed, augment, fold, num_folds, bootstrap_seed:
            see ``ImageDataModule``.
    """

    name = "multi-label image folder"
    multi_label = True

    def __init__(
        self,
        root: str,
        train_csv: str,
        test_csv: str | None = None,
        classes: list[str] | None = None,
        image_size: int | tuple[int, int] = 32,
        grayscale: bool = False,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        cache_dir: str | None = None,
        cache: bool = True,
        decode_workers: int | None = None,
        data_dir: str | None = None,
        download: bool = False,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        val_size: int | float | None = None,
        split_seed: int = 42,
        augment: list[BatchAugmentation] | None = None,
        fold: int | None = None,
        num_folds: int = 5,
        mix: BatchMix | None = None,
        bootstrap_seed: int | None = None,
    ) -> None:
        super(ImageFolderDataModule, self).__init__(  # the base's options: ImageFolderDataModule's checks folders
            data_dir=data_dir, download=download, batch_size=batch_size, eval_batch_size=eval_batch_size,
            num_workers=num_workers, val_size=val_size, split_seed=split_seed, augment=augment, fold=fold,
            num_folds=num_folds, mix=mix, bootstrap_seed=bootstrap_seed,
        )  # fmt: skip
        if mix is not None:
            raise ConfigError(
                "data.mix: MixUp and CutMix mix one class per image; multi-label data (MultiLabelImageFolder) cannot"
                " use them, remove data.mix"
            )
        shape = self.shape_of(image_size, grayscale)
        for key, value in (("mean", mean), ("std", std)):
            if value is not None and len(value) != shape[0]:
                raise ConfigError(f"data.{key} needs {shape[0]} values (one per channel), got {list(value)}")
        if std is not None and min(std) <= 0:
            raise ConfigError(f"data.std values must be above 0, got {list(std)}")
        if decode_workers is not None and decode_workers < 1:
            raise ConfigError(f"data.decode_workers must be at least 1, got {decode_workers}")
        self.image_size = (shape[1], shape[2])
        self.channels = shape[0]
        self.cache_dir = resolve_cache_dir(cache_dir)
        self._cache_dir_given = cache_dir is not None
        self.use_cache = cache
        self.decode_workers = decode_workers or len(os.sched_getaffinity(0))
        self.root = self._resolve_root(root)
        self.train_folder = self._resolve_csv(train_csv, "data.train_csv")
        self.test_folder = self._resolve_csv(test_csv, "data.test_csv") if test_csv is not None else None
        rows = {self.train_folder: read_label_csv(self.train_folder, self.root, "data.train_csv")}
        if self.test_folder is not None:
            rows[self.test_folder] = read_label_csv(self.test_folder, self.root, "data.test_csv")
        found = sorted({label for _, labels in rows[self.train_folder] for label in labels})
        if classes is not None and len(set(classes)) != len(classes):
            raise ConfigError(f"data.classes names a label twice: {classes}")
        self.classes = tuple(classes) if classes is not None else tuple(found)
        if len(self.classes) < 2:
            raise ConfigError(
                f"data.train_csv: {self.train_folder} has one label ({', '.join(self.classes)}); multi-label"
                " classification needs at least two"
            )
        self.num_classes = len(self.classes)
        self.input_shape = shape
        keys = {self.train_folder: "data.train_csv", self.test_folder: "data.test_csv"}
        self._targets = {csv: multi_hot(listed, self.classes, csv, keys[csv]) for csv, listed in rows.items()}
        self._rows = rows
        self._given_stats = (mean, std)
        self._mean_std = (tuple(mean), tuple(std)) if mean is not None and std is not None else None
        self._listing: dict[Path, tuple[list[Path], list[int], list[tuple[str, int, int]]]] = {}

    def _resolve_csv(self, name: str, key: str) -> Path:
        """A CSV given absolute, or relative to the current folder, else to ``root``."""
        path = Path(name).expanduser()
        candidates = [path] if path.is_absolute() else [Path.cwd() / path, self.root / path]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DataNotFoundError(f"{key}: no CSV file {name} (looked for {', '.join(map(str, candidates))})")
        return found

    def files_present(self) -> bool:
        return self.train_folder.is_file()

    def expected_files(self) -> str:
        return f"the images listed in {self.train_folder}"

    def _files(self, folder: Path) -> tuple[list[Path], list[int], list[tuple[str, int, int]]]:
        """The CSV's files, their row numbers as labels (the multi-hot targets are read from the CSV, never from the
        cache) and (path, size, modification time) for the cache key."""
        if folder not in self._listing:
            paths, stats = [], []
            for name, _ in self._rows[folder]:
                path = self.root / name
                status = path.stat()
                paths.append(path)
                stats.append((name, status.st_size, status.st_mtime_ns))
            self._listing[folder] = (paths, list(range(len(paths))), stats)
        return self._listing[folder]

    def training_labels(self) -> Tensor:
        """The row of every training image: the splits are drawn by position."""
        return torch.arange(len(self._rows[self.train_folder]))

    def held_out_split(self, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        return torch.arange(len(labels)), None

    def load_training_subset(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        images, _, found = super().load_training_subset(indices)
        return images, self._targets[self.train_folder][found], found

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        """Every image of the training CSV (``train``) or of the test CSV, with its multi-hot targets."""
        if not train and self.test_folder is None:
            raise ConfigError("data.test_csv is not set: give a CSV of file,labels rows (relative to data.root)")
        listing = self.train_folder if train else self.test_folder
        assert listing is not None
        images, _, found = self._load_files(listing)
        return images, self._targets[listing][found]

    def train_class_counts(self) -> Tensor:
        """Training images of each label (after the validation split)."""
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        return self.train_set.labels.sum(dim=0).long()

    def label_sets(self, targets: Tensor) -> list[list[str]]:
        """The label names of each row of multi-hot ``targets``."""
        return [[self.classes[i] for i in row.nonzero().flatten().tolist()] for row in targets]

    def preprocessing(self) -> dict[str, Any]:
        return {**super().preprocessing(), "multi_label": True}
