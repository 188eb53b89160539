"""What the benchmarks share: the data, the tutorial baseline pipeline, a plain training loop, timing.

Data: CIFAR shapes come from the CIFAR-10 JPEG copy (decoded once by ``ImageFolderDataModule`` and
cached), MNIST from the official files; both found like any command finds them: ``$LIGHTNING_CNN_DATA``, else
``./data``. Baseline and ours always run alternately in one process and are compared as a ratio.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from lightning_cnn.data import ImageDataModule, ImageFolderDataModule, MNISTDataModule

ROOT = Path(__file__).resolve().parent.parent
CIFAR_JPEG = "cifar10-jpeg.tar.gz"
# data module options every benchmark's data takes: the quick check of benchmarks.results shrinks the validation
# split here so that its tiny data sets fit
DATA_OPTIONS: dict[str, object] = {}


def python_process(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``python COMMAND`` in a fresh process run from the project folder, ``env`` added to the
    environment; a failure raises with the end of its error output."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True,
                          env=os.environ | (env or {}))  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def machine() -> str:
    """One line naming the CPU, cores, torch threads and the torch and Lightning versions."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return (
        f"{model}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads,"
        f" Lightning {L.__version__}"
    )


def cifar_jpeg(**kwargs) -> ImageFolderDataModule:
    """The CIFAR-10 JPEG copy as a data module (45,000 training images after the 5,000 validation split)."""
    options = {"root": CIFAR_JPEG, "train_dir": "train", "test_dir": "test"}
    dm = ImageFolderDataModule(**(options | DATA_OPTIONS | kwargs))
    dm.setup("fit")
    return dm


def mnist(**kwargs) -> MNISTDataModule:
    dm = MNISTDataModule(**(DATA_OPTIONS | kwargs))
    dm.setup("fit")
    return dm


class TutorialDataset(Dataset):
    """The tutorial way (torchvision's ``CIFAR10``): uint8 HWC arrays in memory, each image through PIL transforms."""

    def __init__(self, images_nchw: torch.Tensor, labels: torch.Tensor, transform: Callable) -> None:
        self.images = images_nchw.permute(0, 2, 3, 1).numpy()  # (N, H, W, C), as torchvision keeps CIFAR
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        return self.transform(pil), self.labels[index]


def tutorial_loader(dm: ImageDataModule, batch_size: int = 128, augment: bool = True, workers: int = 2) -> DataLoader:
    """``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize`` in 2 DataLoader workers."""
    size = dm.input_shape[1]
    steps = [transforms.RandomCrop(size, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    transform = transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(dm.mean, dm.std)])
    dataset = TutorialDataset(dm.train_set.images, dm.train_set.labels, transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)


def plain_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches, limit: int | None = None) -> int:
    """One epoch of the textbook loop (the first ``limit`` batches if given); ``batches`` yields (float images,
    labels). Returns the images seen."""
    model.train()
    seen = 0
    for i, (images, labels) in enumerate(batches):
        if limit is not None and i >= limit:
            break
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        seen += len(labels)
    return seen


class TrainTimer(L.Callback):
    """Seconds of the training batches of the first epoch: first batch start to last batch end (no validation);
    wall-clock seconds, and this process's CPU seconds (steadier than wall time)."""

    def __init__(self) -> None:
        self.start = self.cpu_start = 0.0
        self.seconds = self.cpu_seconds = 0.0
        self.images = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.images += len(batch[1])
        if batch_idx == trainer.num_training_batches - 1 and trainer.current_epoch == 0:
            self.seconds = time.perf_counter() - self.start
            self.cpu_seconds = time.process_time() - self.cpu_start


def fit_epoch_seconds(args: list[str], tmp: Path, limit: int | None = None) -> tuple[float, int, float]:
    """Run ``lightning_cnn fit ARGS`` for one epoch (``limit`` batches if given) in this process; the training
    epoch's seconds, images and CPU seconds."""
    from lightning_cnn.cli import cli_main

    sys.argv[1:] = []  # the benchmark's own flags are parsed already; LightningCLI should not see them
    cli = cli_main(
        ["fit", *args, "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false", "--trainer.num_sanity_val_steps", "0",
         "--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(tmp), "--preview.num_images", "0",
         "--trainer.callbacks+=benchmarks.common.TrainTimer",
         *(arg for key, value in DATA_OPTIONS.items() for arg in (f"--data.{key}", str(value))),
         *(["--trainer.limit_train_batches", str(limit)] if limit else [])]
    )  # fmt: skip
    timer = next(cb for cb in cli.trainer.callbacks if isinstance(cb, TrainTimer))
    return timer.seconds, timer.images, timer.cpu_seconds


def alternate(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[Any]]:
    """Call each run in turn, ``rounds`` times, reversing the order every round; each returns seconds, or
    (wall seconds, CPU seconds)."""
    results: dict[str, list[Any]] = {name: [] for name in runs}
    for r in range(rounds):
        for name in list(runs) if r % 2 == 0 else list(runs)[::-1]:
            results[name].append(runs[name]())
            value = results[name][-1]
            shown = f"{value[0]:.2f} s (CPU {value[1]:.2f} s)" if isinstance(value, tuple) else f"{value:.2f} s"
            print(f"  round {r + 1} {name}: {shown}", flush=True)
    return results


def best(seconds: list[float]) -> float:
    """The fastest repeat: the least disturbed by anything else the machine runs."""
    return min(seconds)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (None: leave them), restoring the count afterwards."""
    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    try:
        yield
    finally:
        torch.set_num_threads(default)


@contextmanager
def added_environment(env: dict[str, str] | None) -> Iterator[None]:
    """Run the block with ``env`` added to this process's environment, the environment restored afterwards: an
    in-process run sees what a fresh process given ``env`` would."""
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def seed(value: int = 0) -> None:
    L.seed_everything(value, verbose=False)
    np.random.seed(value)
