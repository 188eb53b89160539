"""ImageFolderDataModule: class folders scanned at construction, images decoded to uint8 at one size,
archives unpacked once, the decode cache, unreadable files skipped by name, clear errors."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from lightning_cnn.data import ImageFolderDataModule
from lightning_cnn.data import image_files as files_module
from lightning_cnn.data.image_folder import channel_mean_std
from lightning_cnn.errors import ConfigError, DataNotFoundError
from tests.helpers.runs import QUICK
from tests.helpers.writers import IMAGE_FOLDER_CLASSES


def folder_module(root, **kwargs) -> ImageFolderDataModule:
    options = {"train_dir": "train", "test_dir": "test", "val_size": 40, "batch_size": 16} | kwargs
    return ImageFolderDataModule(root=str(root), **options)


def test_classes_and_shape_are_known_at_construction(image_folder_dir):
    dm = folder_module(image_folder_dir / "folders", image_size=[24, 20])
    assert dm.classes == IMAGE_FOLDER_CLASSES and dm.num_classes == 10
    assert dm.input_shape == (3, 24, 20)
    assert dm.train_set is None  # nothing decoded yet


def test_mixed_sizes_and_modes_decode_to_one_uint8_tensor(image_folder_dir):
    dm = folder_module(image_folder_dir / "folders")
    dm.setup(None)
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (160, 40, 50)
    assert dm.train_set.images.dtype == torch.uint8 and dm.train_set.images.shape[1:] == (3, 32, 32)
    # labels follow the folder each file is in
    counts = torch.bincount(torch.cat([dm.train_set.labels, dm.val_set.labels]), minlength=10)
    expected = [len(list((image_folder_dir / "folders" / "train" / name).iterdir())) for name in dm.classes]
    assert counts.tolist() == expected
    gray = folder_module(image_folder_dir / "folders", grayscale=True, image_size=16)
    gray.setup("test")
    assert gray.input_shape == (1, 16, 16) and gray.test_set.images.shape[1:] == (1, 16, 16)


def test_archive_is_unpacked_once_into_the_cache(image_folder_dir, tmp_path):
    dm = folder_module("cifar10-jpeg.tar.gz", data_dir=str(image_folder_dir), cache_dir=str(tmp_path / "c"))
    assert dm.root.is_relative_to(tmp_path / "c")  # never inside the (possibly read-only) data folder
    dm.setup("test")
    plain = folder_module(image_folder_dir / "folders", cache=False)
    plain.setup("test")
    assert torch.equal(dm.test_set.images, plain.test_set.images)
    again = folder_module("cifar10-jpeg.tar.gz", data_dir=str(image_folder_dir), cache_dir=str(tmp_path / "c"))
    assert again.root == dm.root
    assert len(list((tmp_path / "c" / "unpacked").iterdir())) == 1


def test_second_run_reads_the_cache_and_a_changed_folder_is_decoded_again(image_folder_dir, tmp_path, monkeypatch):
    folder = tmp_path / "images"
    shutil.copytree(image_folder_dir / "folders" / "test", folder)
    first = ImageFolderDataModule(root=str(folder), val_size=10)
    first.setup("fit")
    assert len(list((tmp_path / "cache" / "images").glob("*.pt"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr("lightning_cnn.data.image_folder.decode_files", no_decoding)
    second = ImageFolderDataModule(root=str(folder), val_size=10)
    second.setup("fit")
    assert torch.equal(second.train_set.images, first.train_set.images)
    assert second.mean == first.mean
    shutil.copy(folder / "cat" / next(p.name for p in (folder / "cat").iterdir()), folder / "cat" / "copy.png")
    with pytest.raises(AssertionError, match="decoded"):
        ImageFolderDataModule(root=str(folder), val_size=10).setup("fit")
    monkeypatch.setattr("lightning_cnn.data.image_folder.decode_files", files_module.decode_files)
    third = ImageFolderDataModule(root=str(folder), val_size=10)
    third.setup("fit")
    assert len(third.train_set) + len(third.val_set) == len(first.train_set) + len(first.val_set) + 1


def test_corrupt_and_non_image_files_are_named_and_skipped(image_folder_dir, tmp_path):
    folder = tmp_path / "images"
    shutil.copytree(image_folder_dir / "folders" / "test", folder)
    n_good = sum(1 for _ in folder.rglob("*.*"))
    good_jpeg = next(folder.rglob("*.jpg")).read_bytes()
    (folder / "dog" / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 3])
    (folder / "cat" / "notes.txt").write_text("not an image")
    dm = ImageFolderDataModule(root=str(folder), val_size=5)
    with pytest.warns(UserWarning, match="skipped 2 unreadable") as caught:
        dm.setup("fit")
    message = str(caught[0].message)
    assert "truncated.jpg" in message and "notes.txt" in message
    assert len(dm.train_set) + len(dm.val_set) == n_good


def test_folder_without_images_fails_with_one_line(image_folder_dir, tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no class sub-folders"):
        ImageFolderDataModule(root=str(tmp_path / "empty"))
    (tmp_path / "classes" / "a").mkdir(parents=True)
    (tmp_path / "classes" / "b").mkdir()
    with pytest.warns(UserWarning, match="empty class folder.*a, b"), pytest.raises(DataNotFoundError):
        ImageFolderDataModule(root=str(tmp_path / "classes"))
    (tmp_path / "classes" / "a" / "x.png").write_bytes(b"junk")
    (tmp_path / "classes" / "b" / "y.png").write_bytes(b"junk")
    with warnings.catch_warnings(), pytest.raises(DataNotFoundError, match="no readable images"):
        warnings.simplefilter("ignore")
        ImageFolderDataModule(root=str(tmp_path / "classes")).setup("fit")
    code, err = run_cli("fit", "--data", "ImageFolderDataModule", "--data.root", tmp_path / "empty", *QUICK)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: no class sub-folders in")


def test_split_is_seeded(image_folder_dir):
    def val_labels(seed: int) -> torch.Tensor:
        dm = folder_module(image_folder_dir / "folders", split_seed=seed)
        dm.setup("fit")
        return dm.val_set.labels

    assert torch.equal(val_labels(3), val_labels(3))
    assert not torch.equal(val_labels(3), val_labels(4))


def test_mean_and_std_are_computed_from_training_images_unless_given(image_folder_dir):
    dm = folder_module(image_folder_dir / "folders")
    dm.setup("test")  # testing alone still normalizes with the training statistics
    train_images, _ = dm.load_split(train=True)
    assert dm.mean == channel_mean_std(train_images)[0]
    expected_mean = train_images.double().div(255).mean(dim=(0, 2, 3))
    assert torch.allclose(torch.tensor(dm.mean, dtype=torch.float64), expected_mean, atol=1e-4)
    given = folder_module(image_folder_dir / "folders", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert given.mean == (0.5, 0.5, 0.5) and given.std == (0.25, 0.25, 0.25)
    with pytest.raises(ConfigError, match="data.mean needs 3 values"):
        folder_module(image_folder_dir / "folders", mean=(0.5,))


def test_test_folder_must_share_the_classes_and_exist_to_test(image_folder_dir, tmp_path):
    shutil.copytree(image_folder_dir / "folders", tmp_path / "f")
    (tmp_path / "f" / "test" / "unicorn").mkdir()
    (tmp_path / "f" / "test" / "unicorn" / "u.png").write_bytes(b"any file makes a class")
    with pytest.raises(ConfigError, match="unicorn"):
        folder_module(tmp_path / "f")
    no_test = folder_module(image_folder_dir / "folders", test_dir=None)
    with pytest.raises(ConfigError, match="data.test_dir is not set"):
        no_test.setup("test")


def test_missing_root_names_where_it_looked(tmp_path):
    with pytest.raises(DataNotFoundError, match="data.root not found: nowhere.tar.gz"):
        ImageFolderDataModule(root="nowhere.tar.gz", data_dir=str(tmp_path))
