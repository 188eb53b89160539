"""Fashion-MNIST and KMNIST: MNIST's IDX files under their own folder, read, split, checked and downloaded by the
one ``IdxDataModule`` that MNIST uses, with their own class names, statistics and torchvision checksums."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from torchvision.datasets import KMNIST, MNIST, FashionMNIST

from lightning_cnn.data import DATAMODULES, FashionMNISTDataModule, KMNISTDataModule, MNISTDataModule
from lightning_cnn.errors import CorruptDataError, DataNotFoundError
from lightning_cnn.tools.models import recipe_rows
from tests.helpers.runs import QUICK

MODULES = {"FashionMNIST": FashionMNISTDataModule, "KMNIST": KMNISTDataModule}


def raw_copy(mnist_dir: Path, folder: str, root: Path) -> Path:
    """``root`` holding the fixture's files of ``folder``, without the fixture's SHA256SUMS: only the official MD5
    sums then apply."""
    shutil.copytree(mnist_dir / folder, root / folder)
    return root


@pytest.mark.parametrize("folder", MODULES)
def test_each_loads_and_splits_its_own_folder(mnist_dir, folder):
    dm = MODULES[folder](data_dir=str(mnist_dir), val_size=200, batch_size=32)
    assert dm.raw_dir == mnist_dir / folder / "raw"
    dm.prepare_data()
    dm.setup(None)
    assert dm.train_set.images.shape == (1000, 1, 28, 28) and dm.train_set.images.dtype == torch.uint8
    assert len(dm.val_set) == 200 and len(dm.test_set) == 300
    mnist = MNISTDataModule(data_dir=str(mnist_dir), val_size=200)
    mnist.setup("fit")
    assert torch.equal(dm.val_set.labels, mnist.val_set.labels)  # the same seeded split as MNIST's
    assert dm.preprocessing()["classes"] == list(dm.classes) and len(dm.classes) == dm.num_classes == 10


def test_class_names_and_statistics_are_the_datasets_own():
    assert FashionMNISTDataModule.classes == tuple(FashionMNIST.classes)
    assert KMNISTDataModule.classes == tuple(KMNIST.classes)
    assert (FashionMNISTDataModule.mean, FashionMNISTDataModule.std) == ((0.2860,), (0.3530,))
    assert (KMNISTDataModule.mean, KMNISTDataModule.std) == ((0.1918,), (0.3483,))
    assert (MNISTDataModule.mean, MNISTDataModule.std, MNISTDataModule.folder) == ((0.1307,), (0.3081,), "MNIST")
    assert {"MNISTDataModule", "FashionMNISTDataModule", "KMNISTDataModule"} <= set(DATAMODULES)


@pytest.mark.parametrize("folder", MODULES)
def test_a_file_that_fails_the_official_md5_is_one_error_naming_it(mnist_dir, tmp_path, folder):
    root = raw_copy(mnist_dir, folder, tmp_path)
    with pytest.raises(CorruptDataError, match="official checksum") as caught:
        MODULES[folder](data_dir=str(root)).prepare_data()
    assert str(root / folder / "raw") in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("folder", "tv_class"), [("FashionMNIST", FashionMNIST), ("KMNIST", KMNIST)])
def test_the_md5_sums_are_torchvisions_for_that_dataset(mnist_dir, tmp_path, monkeypatch, folder, tv_class):
    root = raw_copy(mnist_dir, folder, tmp_path)
    sums = [(p.name, hashlib.md5(p.read_bytes()).hexdigest()) for p in sorted((root / folder / "raw").iterdir())]
    monkeypatch.setattr(tv_class, "resources", sums)  # the fixture's files are now the "official" ones
    dm = MODULES[folder](data_dir=str(root), val_size=200)
    dm.prepare_data()
    dm.setup("test")
    assert len(dm.test_set) == 300
    assert MNIST.resources != sums  # MNIST's own sums are untouched


@pytest.mark.parametrize("folder", MODULES)
def test_a_missing_folder_without_download_names_the_folder(tmp_path, folder):
    with pytest.raises(DataNotFoundError, match=f"{tmp_path}/{folder}/raw") as caught:
        MODULES[folder](data_dir=str(tmp_path), download=False).prepare_data()
    assert "\n" not in str(caught.value)


def test_download_goes_through_torchvisions_class_into_its_folder(mnist_dir, tmp_path, monkeypatch):
    def fake_download(self: KMNIST) -> None:  # what torchvision's download leaves: the files unpacked in raw/
        Path(self.raw_folder).mkdir(parents=True, exist_ok=True)
        for gz in (mnist_dir / "KMNIST" / "raw").iterdir():
            (Path(self.raw_folder) / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))

    monkeypatch.setattr(KMNIST, "download", fake_download)
    dm = KMNISTDataModule(data_dir=str(tmp_path), download=True, val_size=200)
    dm.prepare_data()
    assert (tmp_path / "KMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    dm.setup("fit")
    assert len(dm.train_set) == 1000


def test_fit_with_fashion_mnist_runs_end_to_end(run_cli, mnist_dir, tmp_path):
    code, err = run_cli(
        "fit", "--data", "FashionMNISTDataModule", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 1,
        "--trainer.limit_train_batches", 2, "--trainer.limit_val_batches", 1, "--trainer.default_root_dir", tmp_path,
        *QUICK,
    )  # fmt: skip
    assert code == 0, err
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, weights_only=True)["FashionMNISTDataModule"]["preprocessing"]
    assert saved["classes"][0] == "T-shirt/top" and saved["mean"] == [pytest.approx(0.2860)]


def test_the_recipes_are_on_the_models_table_at_28_by_28():
    rows = {row["recipe"]: row for row in recipe_rows()}
    for recipe in ("configs/fashion_mnist/lenet5.yaml", "configs/kmnist/lenet5.yaml"):
        assert rows[recipe]["shape"] == "1×28×28" and rows[recipe]["params"] == 61_706
