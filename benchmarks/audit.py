"""The dataset audit, measured: planted duplicates and label flips found in an MNIST subset, and what the audit finds
in real MNIST, each run with the command the Tools page shows.

    python -m benchmarks.audit [--parts audit]

- ``audit``: (1) a seeded 10,000-image subset of MNIST's training set with 1 % of its labels moved to another class,
  10 of its images copied exactly and 10 with a little noise into a 2,000-image test subset: ``audit --folds 3`` of
  the LeNet-5 recipe for one epoch, the planted pairs found and the recall of the planted flips in the top 2 % of
  ``audit.csv``; (2) ``audit`` of the whole of MNIST: its train/test near-duplicates and its top label suspects,
  whose grid goes to docs/tools/audit-suspects.png.

``benchmarks.results`` runs these as parts of ``make results`` and renders them with ``TITLES``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine
from benchmarks.workflows import MNIST_RECIPE, lightning_cnn

ROOT = Path(__file__).resolve().parent.parent
FIGURE = ROOT / "docs" / "tools" / "audit-suspects.png"
SUBSET, TEST_SUBSET, FLIP_FRACTION, COPIES = 10_000, 2_000, 0.01, 10
FIT = ["--folds", "3", "--config", MNIST_RECIPE, "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]


def real_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST's training and test images and labels from ``$LIGHTNING_CNN_DATA``."""
    from lightning_cnn.data import MNISTDataModule

    dm = MNISTDataModule(download=False)
    dm.prepare_data()
    (train, train_labels), (test, test_labels) = (dm.load_checked_split(t) for t in (True, False))
    return train[:, 0].numpy(), train_labels.numpy(), test[:, 0].numpy(), test_labels.numpy()


def write_mnist(root: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> None:
    """``root/MNIST/raw``: the official gzipped IDX files of these images, and the SHA256SUMS the data module checks."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        for kind, array in (("images", images), ("labels", labels)):
            header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            with gzip.open(raw / f"{prefix}-{kind}-idx{array.ndim}-ubyte.gz", "wb") as f:
                f.write(header + array.astype(np.uint8).tobytes())
    files = sorted(p for p in root.rglob("*") if p.is_file())
    sums = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root)}" for p in files]
    (root / "SHA256SUMS").write_text("\n".join(sums) + "\n")


def audit_record(root: Path) -> tuple[Path, dict[str, Any]]:
    folder = next((root / "lightning_logs").glob("audit_*"))
    return folder, json.loads((folder / "audit.json").read_text())


def audit(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """The planted test on an MNIST subset, then the audit of MNIST itself (of a small real subset when quick)."""
    command = partial(lightning_cnn, in_process=in_process)
    quick = bool(extra)
    train, train_labels, test, test_labels = real_mnist()
    rng = np.random.default_rng(0)
    n, n_test = (min(600, len(train)), min(200, len(test))) if quick else (SUBSET, TEST_SUBSET)
    chosen = np.sort(rng.choice(len(train), n, replace=False))
    sub, sub_labels = train[chosen].copy(), train_labels[chosen].copy()
    sub_test, sub_test_labels = test[:n_test].copy(), test_labels[:n_test].copy()
    flipped = np.sort(rng.choice(n, round(FLIP_FRACTION * n), replace=False))
    sub_labels[flipped] = (sub_labels[flipped] + rng.integers(1, 10, len(flipped))) % 10
    sources = rng.choice(n, 2 * COPIES, replace=False)  # copied into the test subset's first 2 * COPIES places
    for k, source in enumerate(sources):
        copy = sub[source].astype(int)
        if k >= COPIES:  # near duplicates: a little noise on every pixel
            copy = np.clip(copy + rng.integers(-3, 4, copy.shape), 0, 255)
        sub_test[k], sub_test_labels[k] = copy.astype(np.uint8), sub_labels[source]
    planted = {(int(s), k) for k, s in enumerate(sources)}
    with tempfile.TemporaryDirectory() as tmp:
        data_root, runs = Path(tmp) / "data", Path(tmp) / "runs"
        write_mnist(data_root, (sub, sub_labels), (sub_test, sub_test_labels))
        args = [*FIT, "--data.data_dir", str(data_root), "--trainer.default_root_dir", str(runs), *extra]
        planted_s = command("audit", *args)
        folder, record = audit_record(runs)
        rows = (folder / "audit.csv").read_text().splitlines()[1:]
        top = {int(row.split(",")[0]) for row in rows[: round(0.02 * n)]}
        pairs = [line.split(",") for line in (folder / "duplicates.csv").read_text().splitlines()[1:]]
        found = {(int(p[2]), int(p[5])) for p in pairs if p[1] == "train" and p[4] == "test"}
        first = {
            "train_images": n, "test_images": n_test, "flips": len(flipped), "copies_exact": COPIES,
            "copies_near": COPIES, "found_exact": len({(s, k) for s, k in planted if k < COPIES} & found),
            "found_near": len({(s, k) for s, k in planted if k >= COPIES} & found),
            "other_pairs": record["duplicates"]["pairs"] - len(planted & found),
            "recall_top2": len(top & set(flipped.tolist())) / len(flipped), "seconds": planted_s,
            "out_of_fold_acc": record["labels"]["out_of_fold_acc"],
        }  # fmt: skip
        real_root = Path(tmp) / "real"
        if quick:  # a real subset without plants stands in for the 70,000 images
            write_mnist(real_root, (train[:1000], train_labels[:1000]), (test[:200], test_labels[:200]))
            data = ["--data.data_dir", str(real_root)]
        else:
            data = ["--data.data_dir", os.environ.get("LIGHTNING_CNN_DATA", "data")]
        real_runs = Path(tmp) / "real_runs"
        real_s = command("audit", *FIT, *data, "--trainer.default_root_dir", str(real_runs), *extra)
        folder, real = audit_record(real_runs)
        if not quick:
            shutil.copyfile(folder / "suspects.png", FIGURE)
    return {
        "planted": first,
        "real": {"training_images": real["dataset"]["training_images"], "test_images": real["dataset"]["test_images"],
                 "duplicates": real["duplicates"], "labels": {k: v for k, v in real["labels"].items() if k != "runs"},
                 "seconds": real_s},
    }  # fmt: skip


PARTS: dict[str, Callable[[list[str], bool], dict[str, Any]]] = {"audit": audit}
NEEDS_MNIST = ("audit",)
NEEDS_CIFAR_JPEG: tuple[str, ...] = ()


# --- Markdown --------------------------------------------------------------------------------------------------
def md_audit(record: dict[str, Any]) -> list[str]:
    p, r = record["planted"], record["real"]
    dup, labels = r["duplicates"], r["labels"]
    lines = [
        "| audit | found |",
        "| :--- | ---: |",
        f"| planted exact train/test copies | {p['found_exact']} of {p['copies_exact']} |",
        f"| planted near copies (±3 noise) | {p['found_near']} of {p['copies_near']} |",
        f"| other duplicate pairs in the subset | {p['other_pairs']} |",
        f"| planted label flips in the top 2 % of audit.csv | {100 * p['recall_top2']:.0f} % of {p['flips']} |",
        f"| real MNIST: duplicate pairs (exact) | {dup['pairs']} ({dup['exact']}) |",
        f"| real MNIST: train/test pairs (exact) | {dup['train_test']} ({dup['train_test_exact']}) |",
        f"| real MNIST: out-of-fold predictions off the label | {labels['disagree']} of {labels['scored']} |",
    ]
    top = ", ".join(f"#{row['index']} {row['given']}→{row['suggested']}" for row in labels["first"][:5])
    return [*lines, "", f"`lightning-cnn audit {' '.join(FIT)}`: {p['train_images']} training images with"
            f" {p['flips']} flips in {p['seconds']:.0f} s (out-of-fold accuracy {100 * p['out_of_fold_acc']:.1f} %);"
            f" the whole of MNIST in {r['seconds'] / 60:.1f} min. Its least believed labels: {top}."]  # fmt: skip


TITLES: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "audit": ("Dataset audit: planted duplicates and label flips, and real MNIST", md_audit),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--quick", action="store_true", help="tiny runs in this process: a check, not a figure")
    args = parser.parse_args()
    print(f"audit: {', '.join(args.parts)}\nmachine: {machine()}")
    for name in args.parts:
        extra = ["--trainer.limit_train_batches", "2"] if args.quick else []
        record = PARTS[name](extra, args.quick)
        print(json.dumps(record, indent=2, default=str))
        print("\n".join(TITLES[name][1](record)), flush=True)


if __name__ == "__main__":
    main()
