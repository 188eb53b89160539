"""MNIST, Fashion-MNIST and KMNIST: 60,000 training and 10,000 test images each, 28×28 grayscale, read from the
official IDX files by one base class, ``IdxDataModule``."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor
from torchvision.datasets import KMNIST, MNIST, FashionMNIST

from lightning_cnn.data.base import DATAMODULES, ImageDataModule
from lightning_cnn.data.checksums import verify_file
from lightning_cnn.errors import CorruptDataError

FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FIX = "run again with data.download true, or copy it again"


def read_idx(path: Path) -> Tensor:
    """Parse an IDX file of unsigned bytes, plain or gzipped, into a uint8 tensor of its stated shape.

    torchvision's reader needs the files unpacked next to the archives; reading the ``.gz`` directly
    lets a read-only copy of the official files (a network drive, say) serve as-is.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    except (OSError, EOFError, struct.error) as err:
        raise CorruptDataError(f"cannot read {path} ({err}); delete it and download or copy it again") from err
    expected = 4 + 4 * ndim + int(torch.tensor(shape).prod())
    if zero != 0 or dtype_code != 0x08 or len(data) != expected:
        raise CorruptDataError(
            f"{path} is not a uint8 IDX file of shape {shape} ({len(data)} bytes, expected {expected});"
            " delete it and download or copy it again"
        )
    return torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8).view(*shape)


class IdxDataModule(ImageDataModule):
    """A dataset in MNIST's four IDX files under ``<data_dir>/<folder>/raw`` (the layout torchvision's class of the
    same name downloads into), ``.gz`` or unpacked, checked against that class's published MD5 sums.

    A subclass sets ``folder``, ``torchvision_class`` and the ``ImageDataModule`` constants, and registers itself.
    """

    folder: ClassVar[str]
    torchvision_class: ClassVar[type[MNIST]]
    num_classes = 10
    input_shape = (1, 28, 28)

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / self.folder / "raw"

    def _find(self, name: str) -> Path | None:
        for candidate in (self.raw_dir / name, self.raw_dir / f"{name}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def _official_md5s(self) -> dict[str, str]:
        return dict(self.torchvision_class.resources)

    def files_present(self) -> bool:
        return all(self._find(name) for names in FILES.values() for name in names)

    def download_files(self) -> None:
        for train in (True, False):
            self.torchvision_class(self.data_dir, train=train, download=True)

    def verify_files(self) -> None:
        official = self._official_md5s()
        for names in FILES.values():
            for path in filter(None, map(self._find, names)):
                verify_file(path, self.data_dir, official.get(path.name), fix=FIX)

    def expected_files(self) -> str:
        names = ", ".join(f"{name}[.gz]" for names in FILES.values() for name in names)
        return f"{names} in {self.raw_dir}"

    def split_files(self, train: bool) -> tuple[str, str]:
        images, labels = (str(self._find(name) or self.raw_dir / name) for name in FILES[train])
        return images, labels

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        image_path, label_path = (self._find(name) for name in FILES[train])
        if image_path is None or label_path is None:
            self.prepare_data()  # raises a clear error when the files are still missing
            image_path, label_path = (self._find(name) for name in FILES[train])
        official = self._official_md5s()
        for path in (image_path, label_path):
            verify_file(path, self.data_dir, official.get(path.name), fix=FIX)
        images, labels = read_idx(image_path), read_idx(label_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise CorruptDataError(f"{image_path} and {label_path} do not match: {images.shape} vs {labels.shape}")
        return images.unsqueeze(1), labels.long()


@DATAMODULES.register
class MNISTDataModule(IdxDataModule):
    """MNIST from ``<data_dir>/MNIST/raw`` (the layout torchvision downloads into), ``.gz`` or unpacked."""

    name = "MNIST"
    folder = "MNIST"
    torchvision_class = MNIST
    mean = (0.1307,)
    std = (0.3081,)
    classes = tuple(str(digit) for digit in range(10))


@DATAMODULES.register
class FashionMNISTDataModule(IdxDataModule):
    """Fashion-MNIST (Zalando's clothing images, a harder drop-in for MNIST) from ``<data_dir>/FashionMNIST/raw``."""

    name = "Fashion-MNIST"
    folder = "FashionMNIST"
    torchvision_class = FashionMNIST
    # the values published for the training set (not computed here: the real files were not at hand)
    mean = (0.2860,)
    std = (0.3530,)
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@DATAMODULES.register
class KMNISTDataModule(IdxDataModule):
    """KMNIST (Kuzushiji-MNIST: ten cursive hiragana, one per class) from ``<data_dir>/KMNIST/raw``."""

    name = "KMNIST"
    folder = "KMNIST"
    torchvision_class = KMNIST
    # the values published for the training set (not computed here: the real files were not at hand)
    mean = (0.1918,)
    std = (0.3483,)
    classes = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")  # romanized, as torchvision names them
