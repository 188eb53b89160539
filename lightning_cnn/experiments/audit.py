"""A dataset's audit: duplicates within and across its splits, files that cannot be read, the class balance of each
split, and the likeliest label errors by confident learning (the out-of-fold probability of each training image's
given label, from a short k-fold run). ``lightning-cnn audit`` runs it and writes what it finds.

Every training image is known by its ``index`` in the data module's whole training set, in the order the module reads
it (before the validation split; an image folder's files sorted by class and name, unreadable ones counted too), the
numbering ``fit --exclude audit.csv --top N`` drops images by.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from lightning_cnn.cli import cli_main
from lightning_cnn.config_files import check_config_files, option_given
from lightning_cnn.data import ImageDataModule, ImageFolderDataModule
from lightning_cnn.data.duplicates import find_duplicates
from lightning_cnn.data.exclusion import COLUMNS, labels_digest
from lightning_cnn.data.image_files import decode_file
from lightning_cnn.errors import ConfigError
from lightning_cnn.experiments.runner import run_fit, tool_command_line

GRID_COLUMNS = 8


@dataclass
class Split:
    """The readable images of one split, their labels and indices in the split's numbering, the split's files (an
    image folder's listing, else None) and its unreadable files."""

    name: str
    images: Tensor
    labels: Tensor
    indices: Tensor
    files: list[Path] | None = None
    unreadable: list[dict[str, Any]] = field(default_factory=list)

    def file(self, index: int, root: Path | None) -> str:
        """The file of image ``index`` (relative to ``root`` when under it), or "" for a set read from one file."""
        if self.files is None:
            return ""
        path = self.files[index]
        return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)


@dataclass
class Dataset:
    """A configured data module's splits as an audit reads them."""

    datamodule: ImageDataModule
    train: Split
    test: Split | None
    training_labels: Tensor  # of every training image, unreadable ones too: the numbering of ``index``
    root: Path | None = None


def build_datamodule(fit_args: Sequence[str]) -> tuple[ImageDataModule, Path]:
    """The data module a ``fit ARGS`` run would train on, and its runs folder (``lightning_logs``), every option
    checked; nothing is loaded or written."""
    args = check_config_files(list(fit_args))
    with tool_command_line(quiet=True):
        cli = cli_main(args, run=False)
    root = getattr(cli.trainer.logger, "root_dir", None)
    runs = Path(root) if root else Path(cli.trainer.default_root_dir) / "lightning_logs"
    return cli.datamodule, runs


def unreadable_files(files: list[Path], found: Tensor, split: str, dm: ImageFolderDataModule) -> list[dict[str, Any]]:
    """The files of a listing that decoding left out (``found``: the readable ones), each with the reason."""
    readable = torch.zeros(len(files), dtype=torch.bool)
    readable[found] = True
    records = []
    for index in (~readable).nonzero().flatten().tolist():
        try:
            decode_file(files[index], dm.image_size, dm.channels)
            reason = "left out by the decode cache"
        except Exception as err:  # noqa: BLE001 - the reason is what is reported
            reason = " ".join(str(err).split())[:200] or type(err).__name__
        records.append({"split": split, "index": index, "file": str(files[index]), "error": reason})
    return records


def read_dataset(dm: ImageDataModule) -> Dataset:
    """Load both splits of ``dm`` whole (the training split before any validation split is drawn)."""
    dm.prepare_data()
    folder = isinstance(dm, ImageFolderDataModule)
    if isinstance(dm, ImageFolderDataModule):
        images, labels, found, files = dm.listed_split(True)
        train = Split("train", images, labels, found, files, unreadable_files(files, found, "train", dm))
        every_label = dm.training_labels()
    else:
        images, labels = dm.load_checked_split(True)
        train, every_label = Split("train", images, labels, torch.arange(len(labels))), labels
    test: Split | None = None
    if dm.test_size is not None:  # the held-out images keep their training numbering
        held = torch.isin(train.indices, dm.held_out_split(every_label)[1])
        test = Split("test", train.images[held], train.labels[held], train.indices[held], train.files)
        train = Split(
            "train", train.images[~held], train.labels[~held], train.indices[~held], train.files, train.unreadable
        )
    elif isinstance(dm, ImageFolderDataModule) and dm.test_folder is not None:
        images, labels, found, files = dm.listed_split(False)
        test = Split("test", images, labels, found, files, unreadable_files(files, found, "test", dm))
    elif not folder:
        images, labels = dm.load_checked_split(False)
        test = Split("test", images, labels, torch.arange(len(labels)))
    root = dm.root if isinstance(dm, ImageFolderDataModule) else None
    return Dataset(dm, train, test, every_label, root)


def class_balance(split: Split, classes: Sequence[str]) -> dict[str, int]:
    """Images of each class in ``split``."""
    counts = torch.bincount(split.labels, minlength=len(classes)).tolist()
    return {str(name): int(n) for name, n in zip(classes, counts, strict=True)}


def duplicate_rows(data: Dataset, hamming: int, tolerance: float) -> list[dict[str, Any]]:
    """The duplicate pairs among both splits, those across train and test (leaks) first, then by difference."""
    splits = [s for s in (data.train, data.test) if s is not None]
    images = torch.cat([s.images for s in splits])
    owner = [(s, row) for s in splits for row in range(len(s.labels))]
    pairs = find_duplicates(images, hamming, tolerance)
    classes = [str(c) for c in data.datamodule.classes]
    rows = []
    for a, b, bits, diff in zip(
        pairs.first.tolist(), pairs.second.tolist(), pairs.hamming.tolist(), pairs.difference.tolist(), strict=True
    ):
        (sa, ra), (sb, rb) = owner[a], owner[b]
        ia, ib = int(sa.indices[ra]), int(sb.indices[rb])
        rows.append(
            {
                "kind": "exact" if diff == 0 else "near",
                "split_a": sa.name,
                "index_a": ia,
                "label_a": classes[int(sa.labels[ra])],
                "split_b": sb.name,
                "index_b": ib,
                "label_b": classes[int(sb.labels[rb])],
                "hamming": int(bits),
                "difference": round(float(diff), 4),
                "file_a": sa.file(ia, data.root),
                "file_b": sb.file(ib, data.root),
                "images": (sa.images[ra], sb.images[rb]),
            }
        )
    rows.sort(key=lambda r: (r["split_a"] == r["split_b"], r["difference"], r["index_a"], r["index_b"]))
    return rows


class ValidationProbabilities(L.Callback):
    """After a fit, the softmax of the trained model over every image of the run's validation split, in order."""

    def __init__(self) -> None:
        self.probabilities: Tensor | None = None

    @torch.no_grad()
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        val = dm.val_set
        pl_module.eval()
        out = []
        for start in range(0, len(val), dm.eval_batch_size):
            batch = (
                val.images[start : start + dm.eval_batch_size].to(pl_module.device),
                val.labels[start : start + dm.eval_batch_size].to(pl_module.device),
            )
            images, _ = dm.prepare_batch(batch, train=False)
            out.append(torch.softmax(pl_module(images).float(), dim=1).cpu())
        self.probabilities = torch.cat(out) if out else torch.zeros(0, dm.num_classes)


def out_of_fold(data: Dataset, fit_args: Sequence[str], folds: int) -> tuple[Tensor, list[str]]:
    """Each training image's predicted probabilities from the fold that did not train on it (NaN for images no fold
    validated), and the run folders of the folds."""
    dm = data.datamodule
    probabilities = torch.full((len(data.training_labels), dm.num_classes), float("nan"))
    readable = torch.zeros(len(data.training_labels), dtype=torch.bool)
    readable[data.train.indices] = True
    saved = dm.fold, dm.num_folds
    if not option_given(fit_args, "test_after_fit"):  # a recipe's test after each fold would only cost time
        fit_args = [*fit_args, "--test_after_fit", "false"]
    runs = []
    for fold in range(folds):
        print(f"audit: fold {fold + 1} of {folds}", flush=True)
        dm.fold, dm.num_folds = fold, folds
        val = dm.training_splits(data.training_labels)["val"]
        val = val[readable[val]]  # the unreadable images of the fold are left out, in order
        collector = ValidationProbabilities()
        result = run_fit([*fit_args, "--data.fold", str(fold), "--data.num_folds", str(folds)], [collector])
        runs.append(str(result.log_dir))
        found = collector.probabilities
        if found is None or len(found) != len(val):
            raise ConfigError(
                f"audit: fold {fold} validated {0 if found is None else len(found)} images, expected"
                f" {len(val)}; the fit options changed the split (leave data.fold/val_size out)"
            )
        probabilities[val] = found
    dm.fold, dm.num_folds = saved
    return probabilities, runs


def suspect_rows(data: Dataset, probabilities: Tensor) -> list[dict[str, Any]]:
    """One row per training image with an out-of-fold prediction, the least believed given label first: ``score``
    is the probability the model gives the image's label (self-confidence), ``suggested`` its most probable class."""
    classes = [str(c) for c in data.datamodule.classes]
    known = ~probabilities.isnan().any(dim=1)
    indices = known.nonzero().flatten()
    given = data.training_labels[indices]
    scores = probabilities[indices, given]
    suggested = probabilities[indices].argmax(dim=1)
    order = sorted(range(len(indices)), key=lambda k: (float(scores[k]), int(indices[k])))
    return [
        {
            "index": int(indices[k]),
            "file": data.train.file(int(indices[k]), data.root),
            "given": classes[int(given[k])],
            "suggested": classes[int(suggested[k])],
            "score": round(float(scores[k]), 6),
        }
        for k in order
    ]


def image_grid(panels: list[tuple[Tensor, str]], path: Path, title: str, columns: int = GRID_COLUMNS) -> None:
    """Draw uint8 (C, H, W) images with a caption each as a PNG grid at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = max(1, -(-len(panels) // columns))
    figure = Figure(figsize=(1.5 * columns, 1.7 * rows + 0.4), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=10)
    for k, (image, caption) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, k + 1)
        shown = image.permute(1, 2, 0).numpy()
        axes.imshow(shown[..., 0] if shown.shape[2] == 1 else shown, cmap="gray", vmin=0, vmax=255)
        axes.set_title(caption, fontsize=7)
        axes.set_axis_off()
    canvas.print_png(str(path))


def image_of(data: Dataset, index: int) -> Tensor:
    """The training image of training index ``index``."""
    row = int((data.train.indices == index).nonzero().flatten()[0])
    return data.train.images[row]


def write_suspects_grid(data: Dataset, rows: list[dict[str, Any]], count: int, path: Path) -> None:
    panels = [
        (image_of(data, r["index"]), f"#{r['index']} {r['given']}→{r['suggested']} {r['score']:.2f}")
        for r in rows[:count]
    ]
    image_grid(panels, path, f"Top {len(panels)} label suspects: #index given→suggested p(given)")


def write_duplicates_grid(rows: list[dict[str, Any]], count: int, path: Path) -> None:
    panels = []
    for r in rows[:count]:
        panels += [
            (r["images"][0], f"{r['split_a']} #{r['index_a']} ({r['label_a']})"),
            (r["images"][1], f"{r['split_b']} #{r['index_b']} ({r['label_b']}) d={r['difference']:.2f}"),
        ]
    image_grid(panels, path, f"{len(panels) // 2} duplicate pairs, train/test leaks first (d: pixel difference)")


def write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    import csv

    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([[row[c] for c in columns] for row in rows])


DUPLICATE_COLUMNS = (
    "kind",
    "split_a",
    "index_a",
    "label_a",
    "split_b",
    "index_b",
    "label_b",
    "hamming",
    "difference",
    "file_a",
    "file_b",
)


@dataclass
class AuditOptions:
    folds: int = 3
    labels: bool = True
    hamming: int = 4
    tolerance: float = 0.05
    grid: int = 32


def run_audit(fit_args: Sequence[str], folder: Path, data: Dataset, options: AuditOptions) -> dict[str, Any]:
    """Audit ``data`` and write audit.json, duplicates.csv, audit.csv (with the label check) and the grids into
    ``folder``; return the record."""
    start = time.monotonic()
    dm = data.datamodule
    classes = [str(c) for c in dm.classes]
    unreadable = [*data.train.unreadable, *(data.test.unreadable if data.test else [])]
    balance = {s.name: class_balance(s, classes) for s in (data.train, data.test) if s is not None}
    duplicates = duplicate_rows(data, options.hamming, options.tolerance)
    write_csv(folder / "duplicates.csv", DUPLICATE_COLUMNS, duplicates)
    if duplicates and options.grid:
        write_duplicates_grid(duplicates, options.grid // 2, folder / "duplicates.png")
    leaks = [r for r in duplicates if r["split_a"] != r["split_b"]]
    record: dict[str, Any] = {
        "dataset": {
            "datamodule": type(dm).__name__,
            "name": getattr(dm, "name", type(dm).__name__),
            "training_images": len(data.training_labels),
            "labels_sha256": labels_digest(data.training_labels),
            "test_images": len(data.test.labels) if data.test is not None else 0,
            "classes": classes,
        },
        "fit_args": list(fit_args),
        "options": {
            "hamming": options.hamming,
            "tolerance": options.tolerance,
            "folds": options.folds if options.labels else None,
        },
        "unreadable": unreadable,
        "class_balance": balance,
        "duplicates": {
            "pairs": len(duplicates),
            "exact": sum(r["kind"] == "exact" for r in duplicates),
            "near": sum(r["kind"] == "near" for r in duplicates),
            "train_test": len(leaks),
            "train_test_exact": sum(r["kind"] == "exact" for r in leaks),
            "first": [{k: v for k, v in r.items() if k != "images"} for r in duplicates[:10]],
        },
    }
    if options.labels:
        probabilities, runs = out_of_fold(data, fit_args, options.folds)
        suspects = suspect_rows(data, probabilities)
        write_csv(folder / "audit.csv", COLUMNS, suspects)
        if suspects and options.grid:
            write_suspects_grid(data, suspects, options.grid, folder / "suspects.png")
        record["labels"] = {
            "folds": options.folds,
            "runs": runs,
            "scored": len(suspects),
            "disagree": sum(r["given"] != r["suggested"] for r in suspects),
            "out_of_fold_acc": round(sum(r["given"] == r["suggested"] for r in suspects) / max(1, len(suspects)), 4),
            "first": suspects[:10],
        }
    record["wall_time_s"] = round(time.monotonic() - start, 1)
    (folder / "audit.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def summary(record: dict[str, Any], folder: Path) -> str:
    """The audit's findings as printed text."""
    data = record["dataset"]
    lines = [f"audit of {data['name']}: {data['training_images']} training images, {data['test_images']} test"]
    lines.append(f"unreadable files: {len(record['unreadable'])}")
    lines += [f"  {u['split']} #{u['index']}: {u['file']} ({u['error']})" for u in record["unreadable"][:10]]
    for split, counts in record["class_balance"].items():
        total = max(1, sum(counts.values()))
        smallest, largest = min(counts, key=counts.__getitem__), max(counts, key=counts.__getitem__)
        lines.append(
            f"class balance, {split}: {total} images, smallest {smallest} {counts[smallest]}"
            f" ({100 * counts[smallest] / total:.1f} %), largest {largest} {counts[largest]}"
            f" ({100 * counts[largest] / total:.1f} %)"
        )
    dup = record["duplicates"]
    lines.append(
        f"duplicates: {dup['exact']} exact and {dup['near']} near pairs; {dup['train_test']} between train"
        f" and test ({dup['train_test_exact']} exact)"
    )
    for r in dup["first"][:5]:
        lines.append(
            f"  {r['kind']}: {r['split_a']} #{r['index_a']} ({r['label_a']}) ~ {r['split_b']} #{r['index_b']}"
            f" ({r['label_b']}), difference {r['difference']}"
        )
    if "labels" in record:
        labels = record["labels"]
        lines.append(
            f"labels ({labels['folds']}-fold out-of-fold predictions, accuracy"
            f" {100 * labels['out_of_fold_acc']:.2f}"
            f" %): {labels['disagree']} of {labels['scored']} images predicted as another class; the least"
            " believed:"
        )
        lines.append(f"  {'index':>7}  {'given':>10}  {'suggested':>10}  p(given)")
        lines += [
            f"  {r['index']:>7}  {r['given']:>10}  {r['suggested']:>10}  {r['score']:.4f}" for r in labels["first"]
        ]
    written = [p.name for p in sorted(folder.iterdir())]
    lines.append(f"saved {folder}: {', '.join(written)}")
    return "\n".join(lines)
