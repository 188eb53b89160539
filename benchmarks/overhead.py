"""Benchmark 3, framework overhead: ``lightning_cnn fit`` vs a plain PyTorch loop over the same in-memory
batches, same model and optimizer, no augmentation: LeNet-5 on MNIST and SimpleCNN on CIFAR shapes.

The plain loop iterates the data module's own training loader and calls its ``prepare_batch`` (uint8 →
normalized float), so the only difference is Lightning and our module (metrics, logging, callbacks).

    python -m benchmarks.overhead [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import alternate, best, cifar_jpeg, fit_epoch_seconds, machine, mnist, plain_epoch, seed
from lightning_cnn.models import LeNet5, SimpleCNN

CASES = {
    # name: (model class, data module builder, CLI data flags, optimizer class, optimizer arguments)
    "LeNet-5 / MNIST": (
        LeNet5, mnist, ["--data", "MNISTDataModule", "--data.batch_size", "64"], torch.optim.Adam, {"lr": 0.002}, 64,
    ),
    "SimpleCNN / CIFAR shapes": (
        SimpleCNN, cifar_jpeg,
        ["--data", "ImageFolderDataModule", "--data.root", "cifar10-jpeg.tar.gz", "--data.train_dir", "train",
         "--data.test_dir", "test", "--data.batch_size", "128"],
        torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}, 128,
    ),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit_batches", type=int, default=None, help="train on this many batches (a smoke test)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    seed()
    print(f"benchmark 3: framework overhead, one training epoch\nmachine: {machine()}")
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (model_cls, build, flags, optimizer_cls, optimizer_args, batch_size) in CASES.items():
            dm = build(batch_size=batch_size)
            n = len(dm.train_set) if args.limit_batches is None else batch_size * args.limit_batches
            optimizer_flags = ["--model.optimizer", optimizer_cls.__name__]
            for key, value in optimizer_args.items():
                optimizer_flags += [f"--model.optimizer.{key}", str(value)]
            print(f"{name} ({n} images, batch {batch_size}):")

            cli_args = ["--model", model_cls.__name__, *optimizer_flags, *flags]

            def ours(cli_args: list[str] = cli_args) -> float:
                return fit_epoch_seconds(cli_args, Path(tmp), args.limit_batches)[0]

            def plain(dm=dm, model_cls=model_cls, optimizer_cls=optimizer_cls, optimizer_args=optimizer_args) -> float:
                model = model_cls(num_classes=dm.num_classes, input_shape=dm.input_shape)
                optimizer = optimizer_cls(model.parameters(), **optimizer_args)
                start = time.perf_counter()
                batches = (dm.prepare_batch(batch, train=False) for batch in dm.train_dataloader())
                plain_epoch(model, optimizer, batches, args.limit_batches)
                return time.perf_counter() - start

            times = alternate({"plain loop": plain, "lightning_cnn fit": ours}, args.rounds)
            summary.append((name, n, best(times["plain loop"]), best(times["lightning_cnn fit"])))
    for name, n, plain_s, ours_s in summary:
        print(
            f"{name}: plain loop {n / plain_s:,.0f} img/s, lightning_cnn fit {n / ours_s:,.0f} img/s,"
            f" ratio {plain_s / ours_s:.3f} (acceptance: ≥ 0.95)"
        )
    print(f"load after: {machine().rsplit('load average', 1)[1]}")


if __name__ == "__main__":
    main()
