"""Benchmark 2, end to end: one training epoch through ``lightning_cnn fit`` vs the tutorial pipeline
feeding a plain PyTorch loop, for SimpleCNN and ConvNet on CIFAR-shaped data (the CIFAR-10 JPEG copy).

Both: 45,000 training images, batch 128, crop (padding 4) + flip + normalize, SGD (lr 0.05, momentum
0.9), one epoch; ours is timed from the first to the last training batch (setup and the 1-batch
validation excluded), the tutorial from creating the DataLoader (its workers start every epoch) to the
last batch.

    python -m benchmarks.end_to_end [--models SimpleCNN ConvNet] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import (
    alternate,
    best,
    cifar_jpeg,
    fit_epoch_seconds,
    machine,
    plain_epoch,
    seed,
    tutorial_loader,
)
from lightning_cnn.models import MODELS

RECIPE = """
seed_everything: 0
model:
  class_path: {model}
  init_args:
    optimizer: {{class_path: torch.optim.SGD, init_args: {{lr: 0.05, momentum: 0.9}}}}
data:
  class_path: ImageFolderDataModule
  init_args:
    root: cifar10-jpeg.tar.gz
    train_dir: train
    test_dir: test
    batch_size: 128
    augment:
      - {{class_path: RandomCrop, init_args: {{padding: 4}}}}
      - {{class_path: HorizontalFlip}}
"""


def measure(models: list[str], rounds: int = 2, limit_batches: int | None = None) -> list[dict]:
    """Seconds of one training epoch per model: tutorial + plain loop, and ``lightning_cnn fit``; best of ``rounds``."""
    dm = cifar_jpeg(batch_size=128)
    n = len(dm.train_set) if limit_batches is None else min(len(dm.train_set), 128 * limit_batches)
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            config = Path(tmp) / f"{name}.yaml"
            config.write_text(RECIPE.format(model=name))
            print(f"{name}:")

            def ours(config: Path = config) -> float:
                return fit_epoch_seconds(["--config", str(config)], Path(tmp), limit_batches)[0]

            def tutorial(name: str = name) -> float:
                model = MODELS[name](num_classes=dm.num_classes, input_shape=(3, 32, 32))
                optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
                start = time.perf_counter()
                plain_epoch(model, optimizer, tutorial_loader(dm, batch_size=128, workers=2), limit_batches)
                return time.perf_counter() - start

            times = alternate({"tutorial": tutorial, "ours": ours}, rounds)
            summary.append({"model": name, "images": n, "tutorial_s": best(times["tutorial"]),
                            "ours_s": best(times["ours"])})  # fmt: skip
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["SimpleCNN", "ConvNet"])
    parser.add_argument("--limit_batches", type=int, default=None, help="train on this many batches (a smoke test)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    seed()
    print(f"benchmark 2: one training epoch end to end, images 3×32×32, batch 128\nmachine: {machine()}")
    for row in measure(args.models, args.rounds, args.limit_batches):
        n, base, ours_s = row["images"], row["tutorial_s"], row["ours_s"]
        print(
            f"{row['model']}: tutorial + plain loop {base:.1f} s/epoch ({n / base:,.0f} img/s), lightning_cnn fit"
            f" {ours_s:.1f} s/epoch ({n / ours_s:,.0f} img/s): {base / ours_s:.2f}× faster"
        )


if __name__ == "__main__":
    main()
