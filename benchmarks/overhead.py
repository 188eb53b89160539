"""Benchmark 3, framework overhead: ``lightning_cnn fit`` vs a plain PyTorch loop over the same in-memory
batches, same model and optimizer, no augmentation: LeNet-5 on MNIST and SimpleCNN on CIFAR shapes.

The plain loop iterates the data module's own training loader and calls its ``prepare_batch`` (uint8 →
normalized float), so the only difference is Lightning and our module (metrics, logging, callbacks). A third
contender, "bare Lightning" (a LightningModule that only computes the loss, in a Trainer without logger or
callbacks), measures Lightning's own floor, so the report separates Lightning's cost from ours.

    python -m benchmarks.overhead [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import (
    TrainTimer,
    alternate,
    best,
    cifar_jpeg,
    fit_epoch_seconds,
    machine,
    mnist,
    plain_epoch,
    seed,
)
from lightning_cnn.data import ImageDataModule
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


class BareModule(L.LightningModule):
    """The least a LightningModule can be: the loss, the optimizer and the data module's batch preparation."""

    def __init__(self, net: nn.Module, dm: ImageDataModule, optimizer_cls: type, optimizer_args: dict) -> None:
        super().__init__()
        self.net, self.dm, self.optimizer_cls, self.optimizer_args = net, dm, optimizer_cls, optimizer_args

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(self.net(images), labels)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.dm.prepare_batch(batch, train=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_cls(self.parameters(), **self.optimizer_args)


def bare_lightning_seconds(
    model: nn.Module, dm: ImageDataModule, optimizer_cls, optimizer_args, limit
) -> tuple[float, float]:
    """One training epoch of ``BareModule`` in a Trainer with no logger, checkpoints, progress bar or summary: wall
    and CPU seconds."""
    timer = TrainTimer()
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=limit, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer], accelerator="cpu",
    )  # fmt: skip
    trainer.fit(BareModule(model.net, dm, optimizer_cls, optimizer_args), train_dataloaders=dm.train_dataloader())
    return timer.seconds, timer.cpu_seconds


def measure(rounds: int = 3, limit_batches: int | None = None) -> list[dict]:
    """Seconds of one training epoch of each case: plain loop, bare Lightning and ``lightning_cnn fit``, run in
    turn ``rounds`` times in this process, best of each."""
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (model_cls, build, flags, optimizer_cls, optimizer_args, batch_size) in CASES.items():
            dm = build(batch_size=batch_size)
            n = len(dm.train_set) if limit_batches is None else min(len(dm.train_set), batch_size * limit_batches)
            optimizer_flags = ["--model.optimizer", optimizer_cls.__name__]
            for key, value in optimizer_args.items():
                optimizer_flags += [f"--model.optimizer.{key}", str(value)]
            print(f"{name} ({n} images, batch {batch_size}):")

            cli_args = ["--model", model_cls.__name__, *optimizer_flags, *flags]

            def ours(cli_args: list[str] = cli_args) -> tuple[float, float]:
                seconds, _, cpu_seconds = fit_epoch_seconds(cli_args, Path(tmp), limit_batches)
                return seconds, cpu_seconds

            def plain(dm=dm, model_cls=model_cls, optimizer_cls=optimizer_cls, optimizer_args=optimizer_args):
                model = model_cls(num_classes=dm.num_classes, input_shape=dm.input_shape)
                optimizer = optimizer_cls(model.parameters(), **optimizer_args)
                start, cpu_start = time.perf_counter(), time.process_time()
                batches = (dm.prepare_batch(batch, train=False) for batch in dm.train_dataloader())
                plain_epoch(model, optimizer, batches, limit_batches)
                return time.perf_counter() - start, time.process_time() - cpu_start

            def bare(dm=dm, model_cls=model_cls, optimizer_cls=optimizer_cls, optimizer_args=optimizer_args):
                model = model_cls(num_classes=dm.num_classes, input_shape=dm.input_shape)
                return bare_lightning_seconds(model, dm, optimizer_cls, optimizer_args, limit_batches)

            contenders = {"plain loop": plain, "bare Lightning": bare, "lightning_cnn fit": ours}
            times = alternate(contenders, rounds)
            plain_s, bare_s, ours_s = (best([wall for wall, _ in times[key]]) for key in contenders)
            plain_cpu, bare_cpu, ours_cpu = (best([cpu for _, cpu in times[key]]) for key in contenders)
            summary.append({"case": name, "images": n, "batch_size": batch_size, "plain_s": plain_s,
                            "bare_s": bare_s, "ours_s": ours_s, "plain_cpu_s": plain_cpu, "bare_cpu_s": bare_cpu,
                            "ours_cpu_s": ours_cpu, "threads": torch.get_num_threads()})  # fmt: skip
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit_batches", type=int, default=None, help="train on this many batches (a smoke test)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    seed()
    print(f"benchmark 3: framework overhead, one training epoch\nmachine: {machine()}")
    for row in measure(args.rounds, args.limit_batches):
        n, plain_s, bare_s, ours_s = row["images"], row["plain_s"], row["bare_s"], row["ours_s"]
        cpu = f"ours / bare Lightning {row['bare_cpu_s'] / row['ours_cpu_s']:.3f}"
        cpu += f", ours / plain loop {row['plain_cpu_s'] / row['ours_cpu_s']:.3f}"
        print(
            f"{row['case']}: plain loop {n / plain_s:,.0f} img/s, bare Lightning {n / bare_s:,.0f} img/s"
            f" (ratio to the plain loop {plain_s / bare_s:.3f}), lightning_cnn fit {n / ours_s:,.0f} img/s,"
            f" ratio to bare Lightning {bare_s / ours_s:.3f}, to the plain loop"
            f" {plain_s / ours_s:.3f}; in CPU seconds: {cpu}"
        )


if __name__ == "__main__":
    main()
