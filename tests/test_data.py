"""Data modules: files found or reported, uint8 splits in memory, seeded splits, normalization on transfer."""

from __future__ import annotations

import gzip

import pytest
import torch

from lightning_cnn.data import CIFAR10DataModule, MNISTDataModule, resolve_data_dir
from lightning_cnn.data.base import TensorImages, keep_batch
from lightning_cnn.data.mnist import read_idx
from lightning_cnn.errors import ConfigError, CorruptDataError, DataNotFoundError


def test_mnist_loads_uint8_splits_of_the_configured_size(mnist_dir):
    dm = MNISTDataModule(data_dir=str(mnist_dir), val_size=200, batch_size=32)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (1000, 200, 300)
    assert dm.train_set.images.dtype == torch.uint8
    assert dm.train_set.images.shape[1:] == (1, 28, 28)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (32, 1, 28, 28) and labels.shape == (32,)
    assert len(next(iter(dm.val_dataloader()))[0]) == 64  # evaluation batches default to twice the size


def test_validation_fraction_and_split_seed(mnist_dir):
    def val_labels(seed: int) -> torch.Tensor:
        dm = MNISTDataModule(data_dir=str(mnist_dir), val_size=0.25, split_seed=seed)
        dm.setup("fit")
        assert len(dm.val_set) == 300
        return dm.val_set.labels

    assert torch.equal(val_labels(1), val_labels(1))
    assert not torch.equal(val_labels(1), val_labels(2))


def test_batches_become_normalized_floats_after_transfer(mnist_dir):
    dm = MNISTDataModule(data_dir=str(mnist_dir))
    batch = (torch.tensor([[[[0, 255]]]], dtype=torch.uint8), torch.tensor([3]))
    images, labels = dm.on_after_batch_transfer(batch, 0)
    assert images.dtype == torch.float32
    expected = (torch.tensor([0.0, 1.0]) - 0.1307) / 0.3081
    assert torch.allclose(images.flatten(), expected)
    assert torch.allclose(dm.denormalize(images).flatten(), torch.tensor([0.0, 1.0]), atol=1e-6)
    assert labels.tolist() == [3]
    already_float = torch.zeros(2, 1, 28, 28)
    assert dm.on_after_batch_transfer(already_float, 0) is already_float


def test_data_dir_comes_from_the_environment(monkeypatch, mnist_dir, tmp_path):
    monkeypatch.setenv("LIGHTNING_CNN_DATA", str(mnist_dir))
    assert MNISTDataModule().data_dir == mnist_dir
    assert MNISTDataModule(data_dir=str(tmp_path)).data_dir == tmp_path  # an explicit folder wins
    monkeypatch.delenv("LIGHTNING_CNN_DATA")
    assert resolve_data_dir(None).name == "data"


def test_plain_and_gzipped_idx_files_read_the_same(mnist_dir, tmp_path):
    gz = mnist_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    plain = tmp_path / "labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    assert torch.equal(read_idx(gz), read_idx(plain))


def test_truncated_idx_file_is_reported_by_name(mnist_dir, tmp_path):
    gz = mnist_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    truncated = tmp_path / "t10k-images-idx3-ubyte"
    truncated.write_bytes(gzip.decompress(gz.read_bytes())[:-100])
    with pytest.raises(CorruptDataError, match=str(truncated)):
        read_idx(truncated)


def test_missing_files_without_download_name_the_folder(tmp_path):
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(DataNotFoundError, match=f"{tmp_path}/MNIST/raw"):
        dm.prepare_data()


def test_cifar10_batches_load_as_nchw_uint8(cifar10_dir):
    dm = CIFAR10DataModule(data_dir=str(cifar10_dir), val_size=100)
    dm.prepare_data()
    dm.setup(None)
    assert dm.train_set.images.shape == (400, 3, 32, 32)
    assert dm.test_set.images.shape == (100, 3, 32, 32)
    # the fixture draws class k as a bright block; NCHW must keep it where the NHWC source put it
    assert dm.test_set.images.dtype == torch.uint8 and dm.test_set.images.float().mean() > 30


def test_cifar10_altered_file_fails_the_md5_check(cifar10_files, tmp_path):
    root, _ = cifar10_files  # torchvision's real MD5 sums: the fixture's batches do not match them
    dm = CIFAR10DataModule(data_dir=str(root))
    with pytest.raises(CorruptDataError, match="MD5"):
        dm.setup("test")


def test_tensor_images_fetch_a_whole_batch_by_index_list():
    data = TensorImages(torch.arange(24, dtype=torch.uint8).view(6, 1, 2, 2), torch.arange(6))
    images, labels = keep_batch(data.__getitems__([4, 1]))
    assert labels.tolist() == [4, 1] and images.shape == (2, 1, 2, 2)


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"num_workers": -1}, {"val_size": -5}])
def test_bad_data_options_fail_at_construction(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        MNISTDataModule(**kwargs)
