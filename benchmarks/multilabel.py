"""Multi-label classification, measured: MNIST pairs (two digits side by side, 28×56 grayscale, labelled with the
set of digits) built from the MNIST files, then the LeNet-5 and ConvNet recipes of ``configs/multilabel``.

    python -m benchmarks.multilabel               # the part: build 20,000 + 5,000 pairs, train both recipes
    python -m benchmarks.multilabel --build DIR   # only write the set: DIR/{train,test}/*.png, train.csv, test.csv

The MNIST files are read from ``$LIGHTNING_CNN_DATA`` (``data/MNIST/raw``). ``benchmarks.results`` runs the part as
``multilabel`` and renders it with ``TITLES``.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.common import machine
from benchmarks.workflows import lightning_cnn, metrics_json, run_folders

RECIPES = ("configs/multilabel/lenet5.yaml", "configs/multilabel/convnet.yaml")
SIZES = (20_000, 5_000)  # train, test pairs
QUICK_SIZES = (300, 100)
SEED = 0
QUIET = ["--trainer.enable_progress_bar", "false"]
FIGURES = ("test/map", "test/f1_micro", "test/f1", "test/hamming_acc", "test/acc")


def build_pairs(out: Path, sizes: tuple[int, int] = SIZES, seed: int = SEED, data_dir: str | None = None) -> Path:
    """Write ``sizes`` (train, test) pairs of MNIST digits of the matching split, side by side, as PNGs under
    ``out/train`` and ``out/test`` with ``train.csv`` and ``test.csv`` (``file,labels``: the digits, once each)."""
    from lightning_cnn.data import MNISTDataModule

    mnist = MNISTDataModule(data_dir=data_dir, download=False)
    mnist.prepare_data()
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "test"), sizes, strict=True):
        images, labels = mnist.load_split(train=split == "train")
        pixels, digits = images[:, 0].numpy(), labels.numpy()
        (out / split).mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(n):
            left, right = rng.integers(len(digits), size=2)
            Image.fromarray(np.concatenate([pixels[left], pixels[right]], axis=1)).save(out / split / f"{i:05d}.png")
            rows.append((f"{split}/{i:05d}.png", " ".join(sorted({str(digits[left]), str(digits[right])}))))
        with open(out / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "labels"])
            writer.writerows(rows)
    return out


def multilabel(extra: list[str], in_process: bool = False) -> dict[str, Any]:
    """Build MNIST pairs (a few hundred in the quick, in-process mode) and train each recipe once; its test figures."""
    command = partial(lightning_cnn, in_process=in_process)
    sizes = QUICK_SIZES if in_process else SIZES
    with tempfile.TemporaryDirectory() as tmp:
        root = build_pairs(Path(tmp) / "mnist-pairs", sizes)
        rows = []
        for recipe in RECIPES:
            runs = Path(tmp) / Path(recipe).stem
            data = ["--data.root", str(root), "--data.cache_dir", str(Path(tmp) / "cache")]
            seconds = command("fit", "--config", recipe, *data, "--trainer.default_root_dir", str(runs), *QUIET, *extra)
            metrics = metrics_json(run_folders(runs)[-1])
            rows.append(
                {
                    "recipe": recipe,
                    "seconds": round(seconds, 1),
                    **{key: metrics.get(key) for key in FIGURES},
                    "per_label_ap": metrics.get("per_label_ap"),
                    "thresholds": metrics.get("thresholds"),
                }
            )
    return {"machine": machine(), "train_pairs": sizes[0], "test_pairs": sizes[1], "seed": SEED, "runs": rows}


PARTS: dict[str, Callable[[list[str], bool], dict[str, Any]]] = {"multilabel": multilabel}
NEEDS_MNIST = ("multilabel",)
NEEDS_CIFAR_JPEG: tuple[str, ...] = ()


def md_multilabel(record: dict[str, Any]) -> list[str]:
    def pct(value: float | None) -> str:
        return f"{100 * value:.2f} %" if value is not None else "-"

    lines = [
        f"MNIST pairs: {record['train_pairs']:,} training and {record['test_pairs']:,} test images of two digits"
        " side by side (28×56), labelled with the set of digits; each recipe once, thresholds tuned on validation.",
        "",
        "| recipe | test mAP | micro F1 | macro F1 | Hamming acc. | exact match |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in record["runs"]:
        figures = " | ".join(pct(row[key]) for key in ("test/map", "test/f1_micro", "test/f1", "test/hamming_acc"))
        lines.append(f"| `{row['recipe']}` | {figures} | {pct(row['test/acc'])} |")
    return lines


TITLES: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "multilabel": ("Multi-label classification (MNIST pairs)", md_multilabel),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", metavar="DIR", help="only write the MNIST pairs set into DIR")
    parser.add_argument("--train", type=int, default=SIZES[0], help="training pairs (with --build)")
    parser.add_argument("--test", type=int, default=SIZES[1], help="test pairs (with --build)")
    args = parser.parse_args()
    if args.build:
        out = build_pairs(Path(args.build), (args.train, args.test))
        print(f"wrote {args.train} + {args.test} pairs with train.csv and test.csv into {out}")
        return
    record = multilabel([])
    print(json.dumps(record, indent=2))
    title, render = TITLES["multilabel"]
    print(f"\n## {title}\n")
    print("\n".join(render(record)))


if __name__ == "__main__":
    main()
