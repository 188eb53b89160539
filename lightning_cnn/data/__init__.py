"""Data modules: every dataset on the one in-memory base, registered with ``@DATAMODULES.register``."""

from lightning_cnn.data import policies  # noqa: F401  (registers the policies among the augmentations)
from lightning_cnn.data.base import DATA_ENV_VAR, DATAMODULES, ImageDataModule, resolve_data_dir
from lightning_cnn.data.cifar10 import CIFAR10DataModule
from lightning_cnn.data.cifar100 import CIFAR100DataModule
from lightning_cnn.data.image_folder import ImageFolderDataModule
from lightning_cnn.data.mnist import FashionMNISTDataModule, KMNISTDataModule, MNISTDataModule
from lightning_cnn.data.multilabel import MultiLabelImageFolder
from lightning_cnn.data.svhn import SVHNDataModule

__all__ = [
    "DATAMODULES",
    "DATA_ENV_VAR",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "KMNISTDataModule",
    "MNISTDataModule",
    "MultiLabelImageFolder",
    "SVHNDataModule",
    "resolve_data_dir",
]
