"""CIFAR-100: 50,000 training and 10,000 test images, 32×32 RGB, in 100 fine classes grouped into 20 coarse ones, read
from the official binary version (fixed-size records of bytes: nothing is unpickled)."""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from torchvision.datasets.utils import download_url

from lightning_cnn.data.augment import BatchAugmentation
from lightning_cnn.data.base import DATAMODULES, ImageDataModule
from lightning_cnn.data.checksums import verify_file
from lightning_cnn.data.mix import BatchMix
from lightning_cnn.errors import ConfigError, CorruptDataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
ARCHIVE = "cifar-100-binary.tar.gz"
ARCHIVE_MD5 = "03b5dce01913d631647c71ecec9e9cb8"  # published with the dataset; the archive is 168,513,733 bytes
FOLDER = "cifar-100-binary"  # the archive's one folder; the same folder unpacked is read too
SPLIT_FILES = {True: "train.bin", False: "test.bin"}
# one record: <coarse label byte><fine label byte><1,024 red, 1,024 green, 1,024 blue bytes, row by row>
RECORD = 2 + 3 * 32 * 32
FIX = "run again with data.download true, or copy it again"

# in label order, as fine_label_names.txt and coarse_label_names.txt list them
FINE_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
COARSE_CLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates",
    "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)  # fmt: skip
LABEL_MODES = {"fine": FINE_CLASSES, "coarse": COARSE_CLASSES}


def read_records(data: bytes, source: str) -> tuple[Tensor, Tensor, Tensor]:
    """Images (N, 3, 32, 32) uint8, coarse labels and fine labels (N,) int64 of a CIFAR-100 ``.bin`` file's bytes;
    ``source`` names the file in the error a size that is not whole records gives."""
    if not data or len(data) % RECORD:
        raise CorruptDataError(
            f"{source} is {len(data):,} bytes, not a whole number of {RECORD:,}-byte CIFAR-100 records: it is"
            f" truncated or not of this dataset; delete it and {FIX}"
        )
    records = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(-1, RECORD)
    images = records[:, 2:].reshape(-1, 3, 32, 32).contiguous()
    return images, records[:, 0].long(), records[:, 1].long()


@DATAMODULES.register
class CIFAR100DataModule(ImageDataModule):
    """CIFAR-100 from ``<data_dir>/cifar-100-binary.tar.gz`` (read in place, checked against its official MD5) or,
    without it, the unpacked ``<data_dir>/cifar-100-binary/{train,test}.bin``.

    Args:
        label_mode: ``fine``: the 100 classes (apple ... worm); ``coarse``: the 20 superclasses they are grouped in
            (aquatic_mammals ... vehicles_2). Both labels are in every record.
        data_dir: see ``ImageDataModule``.
        download: see ``ImageDataModule``.
        batch_size: see ``ImageDataModule``.
        eval_batch_size: see ``ImageDataModule``.
        num_workers: see ``ImageDataModule``.
        val_size: see ``ImageDataModule``.
        split_seed: see ``ImageDataModule``.
        augment: see ``ImageDataModule``.
        fold: see ``ImageDataModule``.
        num_folds: see ``ImageDataModule``.
        mix: see ``ImageDataModule``.
        bootstrap_seed: see ``ImageDataModule``.
        sample_weights: see ``ImageDataModule``.
        test_size: see ``ImageDataModule``.
    """

    name = "CIFAR-100"
    num_classes = 100  # the default label_mode's; an instance holds its own mode's count
    input_shape = (3, 32, 32)
    # the training set's per-channel mean and standard deviation over all pixels, as published (the same kind of
    # statistic as CIFAR-10's here; not recomputed: the real files were not at hand)
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    classes = FINE_CLASSES

    def __init__(
        self,
        label_mode: Literal["fine", "coarse"] = "fine",
        data_dir: str | None = None,
        download: bool = True,
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
        test_size: int | float | None = None,
        sample_weights: str | None = None,
    ) -> None:
        if label_mode not in LABEL_MODES:
            raise ConfigError(f"data.label_mode must be fine (100 classes) or coarse (20), got {label_mode!r}")
        super().__init__(
            data_dir=data_dir, download=download, batch_size=batch_size, eval_batch_size=eval_batch_size,
            num_workers=num_workers, val_size=val_size, split_seed=split_seed, augment=augment,
            fold=fold, num_folds=num_folds, mix=mix, bootstrap_seed=bootstrap_seed, test_size=test_size,
            sample_weights=sample_weights,
        )  # fmt: skip
        self.label_mode = label_mode
        self.classes = LABEL_MODES[label_mode]
        self.num_classes = len(self.classes)

    @property
    def archive(self) -> Path:
        return self.data_dir / ARCHIVE

    @property
    def unpacked_dir(self) -> Path:
        return self.data_dir / FOLDER

    def _unpacked(self) -> bool:
        return all((self.unpacked_dir / name).is_file() for name in SPLIT_FILES.values())

    def files_present(self) -> bool:
        return self.archive.is_file() or self._unpacked()

    def download_files(self) -> None:
        download_url(URL, str(self.data_dir), ARCHIVE, ARCHIVE_MD5)

    def verify_files(self) -> None:
        """The archive against its official MD5; unpacked files (no official sums of their own) against
        ``SHA256SUMS`` when it lists them."""
        if self.archive.is_file():
            verify_file(self.archive, self.data_dir, ARCHIVE_MD5, fix=FIX)
        elif self._unpacked():
            for name in SPLIT_FILES.values():
                verify_file(self.unpacked_dir / name, self.data_dir, fix=FIX)

    def expected_files(self) -> str:
        return f"{ARCHIVE}, or {FOLDER}/train.bin and {FOLDER}/test.bin, in {self.data_dir}"

    def split_files(self, train: bool) -> tuple[str, str]:
        name = SPLIT_FILES[train]
        where = f"{self.archive}: {FOLDER}/{name}" if self.archive.is_file() else str(self.unpacked_dir / name)
        return where, where

    def _read_bytes(self, train: bool) -> bytes:
        """The bytes of a split's ``.bin`` file, from the archive when it is there (checked first), else unpacked."""
        name = SPLIT_FILES[train]
        if not self.archive.is_file():
            path = self.unpacked_dir / name
            verify_file(path, self.data_dir, fix=FIX)
            return path.read_bytes()
        verify_file(self.archive, self.data_dir, ARCHIVE_MD5, fix=FIX)
        try:
            with tarfile.open(self.archive, "r:gz") as tar:
                member = tar.extractfile(f"{FOLDER}/{name}")
                if member is None:
                    raise KeyError(f"{FOLDER}/{name} is not a file")
                return member.read()
        except KeyError as err:
            raise CorruptDataError(
                f"{self.archive} holds no {FOLDER}/{name} ({err}): it is not the CIFAR-100 binary archive; delete it"
                f" and {FIX}"
            ) from err
        except (OSError, EOFError, tarfile.TarError, zlib.error) as err:
            raise CorruptDataError(f"cannot read {self.archive} ({err}); delete it and {FIX}") from err

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        if not self.files_present():
            self.prepare_data()  # raises a clear error when the files are still missing
        images, coarse, fine = read_records(self._read_bytes(train), self.split_files(train)[0])
        return images, fine if self.label_mode == "fine" else coarse
