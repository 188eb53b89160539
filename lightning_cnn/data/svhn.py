"""SVHN (Street View House Numbers, cropped digits): 73,257 training, 26,032 test and 531,131 extra images, 32×32
RGB, read from the official MATLAB files (format 2) with scipy, the optional ``svhn`` extra."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import SVHN
from torchvision.datasets.utils import download_url

from lightning_cnn.data.augment import BatchAugmentation
from lightning_cnn.data.base import DATAMODULES, ImageDataModule
from lightning_cnn.data.checksums import verify_file
from lightning_cnn.data.mix import BatchMix
from lightning_cnn.errors import CorruptDataError, require

FOLDER = "SVHN"
FIX = "run again with data.download true, or copy it again"


def read_mat(path: Path) -> tuple[Tensor, Tensor]:
    """Images (N, 3, 32, 32) uint8 and digit labels (N,) int64 of an SVHN format-2 ``.mat`` file.

    ``scipy.io.loadmat`` reads MATLAB's v5 format as data (it runs no code from the file). The file holds ``X``,
    32×32×3×N, and ``y``, N labels 1 to 10, where 10 is the digit 0.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except Exception as err:  # noqa: BLE001 - a damaged file fails in scipy in many ways (ValueError, zlib, OSError)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CorruptDataError(f"cannot read {path} ({reason}); delete it and {FIX}") from err
    x, y = mat.get("X"), mat.get("y")
    shaped = x is not None and x.ndim == 4 and x.shape[:3] == (32, 32, 3) and x.dtype.name == "uint8"
    if not shaped or y is None or y.size != x.shape[3]:
        found = f"X {getattr(x, 'shape', None)} {getattr(x, 'dtype', '')}, y {getattr(y, 'shape', None)}"
        raise CorruptDataError(
            f"{path} does not hold SVHN's X (32×32×3×N uint8) and y (N labels) but {found}; delete it and {FIX}"
        )
    labels = torch.from_numpy(y.reshape(-1).astype("int64"))
    outside = (labels < 1) | (labels > 10)
    if bool(outside.any()):
        raise CorruptDataError(
            f"{path}: {int(outside.sum())} of {len(labels)} labels are outside 1..10 (the first is"
            f" {int(labels[outside][0])}); the file is not of this dataset, or damaged: delete it and {FIX}"
        )
    images = torch.from_numpy(x).permute(3, 2, 0, 1).contiguous()  # (H, W, C, N) → (N, C, H, W)
    return images, labels % 10  # 10 stands for the digit 0


@DATAMODULES.register
class SVHNDataModule(ImageDataModule):
    """SVHN's cropped digits from ``<data_dir>/SVHN/{train,test,extra}_32x32.mat``, checked against the MD5 sums
    torchvision publishes; needs scipy (``pip install 'lightning-cnn[svhn]'``).

    Args:
        extra: add the 531,131 extra images (``extra_32x32.mat``, 1.3 GB) to the training set; the validation split
            is then drawn from both. The extra images are easier than the training ones.
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

    name = "SVHN"
    num_classes = 10
    input_shape = (3, 32, 32)
    # the values commonly published for the training split (not recomputed: the real files were not at hand); kept
    # with extra, so that a model's preprocessing does not depend on that option
    mean = (0.4377, 0.4438, 0.4728)
    std = (0.1980, 0.2010, 0.1970)
    classes = tuple(str(digit) for digit in range(10))

    def __init__(
        self,
        extra: bool = False,
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
        require("scipy", "SVHNDataModule (reading MATLAB files)")
        super().__init__(
            data_dir=data_dir, download=download, batch_size=batch_size, eval_batch_size=eval_batch_size,
            num_workers=num_workers, val_size=val_size, split_seed=split_seed, augment=augment,
            fold=fold, num_folds=num_folds, mix=mix, bootstrap_seed=bootstrap_seed, test_size=test_size,
            sample_weights=sample_weights,
        )  # fmt: skip
        self.extra = extra

    @property
    def folder(self) -> Path:
        return self.data_dir / FOLDER

    def _splits(self, train: bool | None = None) -> list[str]:
        """The official files a split is read from (``train`` True: the training split, False: the test split), or
        with None every file this data module uses."""
        training = ["train", "extra"] if self.extra else ["train"]
        if train is None:
            return [*training, "test"]
        return training if train else ["test"]

    def _path(self, split: str) -> Path:
        return self.folder / SVHN.split_list[split][1]

    def files_present(self) -> bool:
        return all(self._path(split).is_file() for split in self._splits())

    def download_files(self) -> None:
        for split in self._splits():
            if not self._path(split).is_file():
                url, filename, md5 = SVHN.split_list[split]
                download_url(url, str(self.folder), filename, md5)

    def verify_files(self) -> None:
        for split in self._splits():
            verify_file(self._path(split), self.data_dir, SVHN.split_list[split][2], fix=FIX)

    def expected_files(self) -> str:
        return f"{', '.join(SVHN.split_list[split][1] for split in self._splits())} in {self.folder}"

    def split_files(self, train: bool) -> tuple[str, str]:
        files = " and ".join(str(self._path(split)) for split in self._splits(train))
        return files, files

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        if not self.files_present():
            self.prepare_data()  # raises a clear error when the files are still missing
        parts = []
        for split in self._splits(train):
            verify_file(self._path(split), self.data_dir, SVHN.split_list[split][2], fix=FIX)
            parts.append(read_mat(self._path(split)))
        if len(parts) == 1:
            return parts[0]
        return torch.cat([images for images, _ in parts]), torch.cat([labels for _, labels in parts])
