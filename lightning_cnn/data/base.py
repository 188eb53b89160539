"""ImageDataModule: whole splits kept in memory as uint8 tensors, turned into floats on the device.

Decoding or converting every image in DataLoader workers on every epoch is the usual bottleneck for
small images; here a batch is a slice of one uint8 tensor, and ``on_after_batch_transfer`` converts
and normalizes it where the model runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from lightning_cnn.data.augment import BatchAugmentation, apply_all
from lightning_cnn.errors import ConfigError, DataNotFoundError

DATA_ENV_VAR = "LIGHTNING_CNN_DATA"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The folder datasets live in: ``data_dir`` if given, else ``$LIGHTNING_CNN_DATA``, else ``./data``."""
    chosen = data_dir or os.environ.get(DATA_ENV_VAR) or "data"
    return Path(chosen).expanduser().absolute()


class TensorImages(Dataset):
    """Images (N, C, H, W) uint8 and labels (N,) int64; fetching a list of indices slices both at once."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"expected uint8 (N, C, H, W) images and N labels, got {images.shape}, {labels.shape}")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]


class EpochShuffleSampler(Sampler[int]):
    """A random order that depends only on (seed, epoch): Lightning calls ``set_epoch`` before each epoch.

    Unlike ``RandomSampler`` it draws nothing from the global RNG, so a run resumed at an epoch boundary
    sees the same order as the uninterrupted run, and every epoch still sees a new order.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randperm(self.size, generator=generator).tolist()


def run_seed() -> int:
    """The seed of this run (``seed_everything``), or torch's initial seed when none was set."""
    return int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed() % 2**31))


def keep_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Collate function for ``TensorImages``: its ``__getitems__`` already returns a whole batch."""
    return batch


class ImageDataModule(LightningDataModule):
    """Base of every data module: a seeded train/val split of the training set, the official test set.

    Subclasses set the class attributes and implement ``files_present``, ``download_files``,
    ``expected_files`` and ``load_split``.

    Args:
        data_dir: folder holding the dataset; default ``$LIGHTNING_CNN_DATA``, else ``./data``.
        download: fetch the official files when they are missing.
        batch_size: training batch size (per process under DDP).
        eval_batch_size: validation/test batch size; default twice ``batch_size``.
        num_workers: DataLoader worker processes; 0 is fastest for in-memory tensors.
        val_size: validation images taken from the training set: a count, or a fraction below 1.
        split_seed: seed of the train/validation split, independent of the training seed.
        augment: batched augmentations applied in order to training batches only, on the model's device,
            before normalization, e.g. ``[{class_path: RandomCrop, init_args: {padding: 4}},
            {class_path: HorizontalFlip}]`` (see ``lightning_cnn.data.augment``).
    """

    name: ClassVar[str]
    num_classes: ClassVar[int]
    input_shape: ClassVar[tuple[int, int, int]]
    mean: ClassVar[tuple[float, ...]]
    std: ClassVar[tuple[float, ...]]
    classes: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = True,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        val_size: int | float = 5000,
        split_seed: int = 42,
        augment: list[BatchAugmentation] | None = None,
    ) -> None:
        super().__init__()
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size or 1)):
            if value < 1:
                raise ConfigError(f"data.{key} must be at least 1, got {value}")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be 0 or more, got {num_workers}")
        if val_size < 0:
            raise ConfigError(f"data.val_size must be 0 or more, got {val_size}")
        self.save_hyperparameters(ignore=["augment"])
        # a readable record (hparams.yaml, checkpoints) that needs no class to load
        self.hparams["augment"] = [repr(a) for a in augment or ()]
        self.augment = list(augment or ())
        self.data_dir = resolve_data_dir(data_dir)
        self.download = download
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 2 * batch_size
        self.num_workers = num_workers
        self.val_size = val_size
        self.split_seed = split_seed
        self.train_set: TensorImages | None = None
        self.val_set: TensorImages | None = None
        self.test_set: TensorImages | None = None

    # --- what a subclass provides -------------------------------------------------------------
    def files_present(self) -> bool:
        """Whether the raw files are in ``self.data_dir``."""
        raise NotImplementedError

    def download_files(self) -> None:
        """Fetch the official files into ``self.data_dir``."""
        raise NotImplementedError

    def expected_files(self) -> str:
        """Where the files should be, for error messages."""
        raise NotImplementedError

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        """The training (``train=True``) or test split as uint8 (N, C, H, W) images and int64 labels."""
        raise NotImplementedError

    # --- Lightning hooks ----------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Find the files, or download them (once, on the first process), and check them before any run
        folder is written."""
        if self.files_present():
            self.verify_files()
            return
        hint = f"copy the official files there, point data.data_dir or ${DATA_ENV_VAR} at a folder that holds them"
        if not self.download:
            raise DataNotFoundError(
                f"{self.name} not found: expected {self.expected_files()}; {hint}, or set data.download true"
            )
        try:
            self.download_files()
        except Exception as err:  # torchvision raises RuntimeError, URLError, OSError, ...
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataNotFoundError(
                f"{self.name} not found and the download failed ({reason}): expected {self.expected_files()}; {hint}"
            ) from err
        if not self.files_present():
            raise DataNotFoundError(f"{self.name} download finished but {self.expected_files()} is still missing")
        self.verify_files()

    def verify_files(self) -> None:
        """Raise ``CorruptDataError`` naming a file that fails its checksum; subclasses that know the sums
        override this (see data/checksums.py)."""

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None) and self.train_set is None:
            images, labels = self.load_split(train=True)
            n_val = self._num_val(len(labels))
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
            self.val_set = TensorImages(images[order[:n_val]], labels[order[:n_val]])
            self.train_set = TensorImages(images[order[n_val:]], labels[order[n_val:]])
        if stage in ("test", "predict", None) and self.test_set is None:
            self.test_set = TensorImages(*self.load_split(train=False))

    def _num_val(self, total: int) -> int:
        n_val = round(self.val_size * total) if isinstance(self.val_size, float) else self.val_size
        if n_val >= total:
            raise ConfigError(f"data.val_size={self.val_size} leaves no training images out of {total}")
        return n_val

    def _eval_sampler(self, dataset: TensorImages) -> Sampler[int] | None:
        """Under several processes, each evaluates every n-th image of the split, unpadded.

        Lightning's own evaluation sampler pads the split with repeated images up to a multiple of the number
        of processes, so DDP metrics would count those twice; being a ``DistributedSampler``, this one is left
        in place by Lightning. Processes may then run one batch more or less than the others, which is safe in
        evaluation: nothing is synchronized per batch (``sync_dist`` and torchmetrics reduce at the epoch end).
        """
        trainer = self.trainer
        if trainer is None or trainer.world_size <= 1 or len(dataset) < trainer.world_size:
            return None
        return UnrepeatedDistributedSampler(
            dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
        )

    def _loader(self, dataset: TensorImages | None, train: bool) -> DataLoader:
        assert dataset is not None, "setup() must run before asking for a dataloader"
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=EpochShuffleSampler(len(dataset), run_seed()) if train else self._eval_sampler(dataset),
            # a generator of its own: creating an iterator then draws nothing from the global RNG
            generator=torch.Generator().manual_seed(run_seed()),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=keep_batch,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 → float in [0, 1] → augmented (training only) → normalized, on the model's device.

        Anything that is not an ``(uint8 images, labels)`` batch (the model summary's example input,
        already-float tensors) passes through unchanged.
        """
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and batch[0].dtype == torch.uint8):
            return batch
        training = self.trainer is not None and self.trainer.training  # false in sanity checks, val, test
        return self.prepare_batch(batch, train=training)

    def prepare_batch(self, batch: tuple[Tensor, Tensor], train: bool) -> tuple[Tensor, Tensor]:
        """A uint8 batch as the model sees it: floats, augmented when ``train``, normalized."""
        images, labels = batch
        images = images.float().div_(255)
        if train and self.augment:
            images = apply_all(self.augment, images)
        return self.normalize(images), labels

    def normalize(self, images: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        return (images - mean) / std

    def denormalize(self, images: Tensor) -> Tensor:
        """Inverse of ``normalize``: back to [0, 1] for showing images."""
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        return images * std + mean
