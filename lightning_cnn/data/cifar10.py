"""CIFAR-10: 50,000 training and 10,000 test images, 32×32 RGB, from the official python batches."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import CIFAR10

from lightning_cnn.data.base import DATAMODULES, ImageDataModule
from lightning_cnn.errors import CorruptDataError


@DATAMODULES.register
class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 from ``<data_dir>/cifar-10-batches-py`` (torchvision's layout, checked against its MD5 sums)."""

    name = "CIFAR-10"
    num_classes = 10
    input_shape = (3, 32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

    @property
    def batches_dir(self) -> Path:
        return self.data_dir / CIFAR10.base_folder

    def files_present(self) -> bool:
        return all((self.batches_dir / name).is_file() for name, _ in CIFAR10.train_list + CIFAR10.test_list)

    def download_files(self) -> None:
        CIFAR10(self.data_dir, train=True, download=True)

    def expected_files(self) -> str:
        return f"data_batch_1..5 and test_batch in {self.batches_dir}"

    def split_files(self, train: bool) -> tuple[str, str]:
        files = str(self.batches_dir / ("data_batch_1..5" if train else "test_batch"))
        return files, files

    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        if not self.files_present():
            self.prepare_data()  # raises a clear error when the files are still missing
        try:
            dataset = CIFAR10(self.data_dir, train=train, download=False)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            raise CorruptDataError(
                f"{self.batches_dir} fails torchvision's MD5 check ({err}); delete it and download it again"
            ) from err
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        return images, torch.tensor(dataset.targets, dtype=torch.long)
