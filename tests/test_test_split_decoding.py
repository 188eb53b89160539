"""Testing decodes only what it evaluates: a held-out test split (``data.test_size``) is drawn from the file list and
labels, so ``test`` decodes its files alone and they are exactly those ``fit`` leaves out; a test folder is tested
without reading the training folder; and the default decode cache is one per user, the same from any folder."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_cnn.data import ImageFolderDataModule, image_files
from lightning_cnn.data.image_files import resolve_cache_dir
from tests.helpers.runs import QUICK

CLASSES = ("cat", "dog", "fox")


def write_classes(folder: Path, per_class: int, seed: int = 0) -> Path:
    """``folder/<class>/<i>.png``: 8 × 8 images of noise, every one different, so that an image tells its file."""
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / name / f"{i}.png")
    return folder


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the image-folder module decodes, in order (the decoding itself is unchanged)."""
    seen: list[Path] = []

    def counting(paths, *args, **kwargs):
        seen.extend(paths)
        return image_files.decode_files(paths, *args, **kwargs)

    monkeypatch.setattr("lightning_cnn.data.image_folder.decode_files", counting)
    return seen


def refuse_to_decode(*args, **kwargs):
    raise AssertionError("decoded although the cache holds the files")


@pytest.fixture
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ``$LIGHTNING_CNN_CACHE``: the default cache, under a ``$XDG_CACHE_HOME`` of this test."""
    monkeypatch.delenv("LIGHTNING_CNN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "lightning_cnn"


def rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(image.numpy()) for image in images}


def folder_module(root: Path, **options) -> ImageFolderDataModule:
    return ImageFolderDataModule(root=str(root), image_size=8, decode_workers=1, **options)


def test_testing_a_held_out_split_decodes_its_files_only_and_they_are_those_fit_leaves_out(tmp_path, decoded):
    root = write_classes(tmp_path / "photos", per_class=10)
    every = {p for p in root.rglob("*.png")}
    fit = folder_module(root, test_size=0.2, cache=False)
    fit.setup("fit")
    decoded_by_fit = set(decoded)
    assert fit.test_set is None and len(fit.train_set) + len(fit.val_set) == 24 == len(decoded_by_fit)
    decoded.clear()

    test = folder_module(root, test_size=0.2, cache=False)
    test.setup("test")
    assert test.train_set is None and test.val_set is None
    assert len(decoded) == len(test.test_set) == 6  # the held-out files, not the folder's 30
    assert set(decoded) == every - decoded_by_fit
    assert torch.bincount(test.test_set.labels).tolist() == [2, 2, 2]
    assert rows(test.test_set.images).isdisjoint(rows(torch.cat([fit.train_set.images, fit.val_set.images])))
    together = folder_module(root, test_size=0.2, cache=False)
    together.setup(None)  # every split at once: the same split
    assert torch.equal(together.test_set.images, test.test_set.images)
    assert torch.equal(together.val_set.images, fit.val_set.images)
    assert torch.equal(together.train_set.images, fit.train_set.images)


def test_validating_decodes_the_validation_images_only(tmp_path, decoded):
    root = write_classes(tmp_path / "photos", per_class=10)
    fit = folder_module(root, test_size=0.2, val_size=6, cache=False)
    fit.setup("fit")
    decoded.clear()
    validate = folder_module(root, test_size=0.2, val_size=6, cache=False)
    validate.setup("validate")
    assert validate.train_set is None and validate.test_set is None
    assert len(decoded) == 6 and torch.equal(validate.val_set.images, fit.val_set.images)


def test_a_test_folder_is_tested_without_reading_the_training_folder(tmp_path, decoded):
    root = tmp_path / "data"
    write_classes(root / "train", per_class=6, seed=1)
    write_classes(root / "test", per_class=3, seed=2)
    fit = folder_module(root, train_dir="train", test_dir="test", cache=False)
    fit.setup("fit")
    record = fit.state_dict()  # what a checkpoint of the run holds
    decoded.clear()

    test = folder_module(root, train_dir="train", test_dir="test", cache=False)
    test.setup("test")
    test.load_state_dict(record)  # Lightning's `test --ckpt_path`: after setup, before the first batch
    images, _ = test.prepare_batch(next(iter(test.test_dataloader())), train=False)
    assert len(decoded) == 9 and all(path.is_relative_to(root / "test") for path in decoded)
    assert test.train_set is None and (test.mean, test.std) == (fit.mean, fit.std)
    assert torch.allclose(images, fit.normalize(test.test_set.images.float() / 255))


def test_statistics_a_checkpoint_did_not_record_come_from_the_training_images_only(tmp_path, decoded):
    root = write_classes(tmp_path / "photos", per_class=10)
    test = folder_module(root, test_size=0.2, cache=False)
    test.setup("test")
    test.load_state_dict({})
    held_out = set(decoded)
    decoded.clear()
    statistics = (test.mean, test.std)
    assert len(decoded) == 24 and held_out.isdisjoint(decoded)  # the training and validation images
    fit = folder_module(root, test_size=0.2, cache=False)
    fit.setup("fit")
    assert statistics == (fit.mean, fit.std)


def test_fit_then_test_read_their_own_cache_entries_and_decode_nothing_again(tmp_path, user_cache, decoded):
    root = write_classes(tmp_path / "photos", per_class=10)
    folder_module(root, test_size=0.2).setup("fit")
    folder_module(root, test_size=0.2).setup("test")
    assert len(decoded) == 30  # each file once
    decoded.clear()
    again = folder_module(root, test_size=0.2)
    again.setup(None)
    again_validate = folder_module(root, test_size=0.2)
    again_validate.setup("validate")  # from the entry of the training and validation images
    assert decoded == [] and len(again.test_set) == 6
    assert torch.equal(again_validate.val_set.images, again.val_set.images)
    assert len(list((user_cache / "images").glob("*.pt"))) == 2


def test_an_entry_of_the_whole_folder_serves_every_split_and_an_unreadable_file_is_named_once(
    tmp_path, user_cache, decoded
):
    root = write_classes(tmp_path / "photos", per_class=10)
    (root / "dog" / "broken.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="broken.png"):
        folder_module(root).setup("fit")  # an entry of all 31 files
    decoded.clear()
    fit, test = folder_module(root, test_size=0.2), folder_module(root, test_size=0.2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit.setup("fit")
        test.setup("test")
    assert decoded == []
    assert sum("broken.png" in str(warning.message) for warning in caught) == 1  # by the split it falls in
    fresh = folder_module(root, test_size=0.2, cache=False)
    with pytest.warns(UserWarning, match="broken.png"):
        fresh.setup(None)
    for name in ("train", "val"):
        assert torch.equal(getattr(fit, f"{name}_set").images, getattr(fresh, f"{name}_set").images)
    assert torch.equal(test.test_set.images, fresh.test_set.images)
    assert len(fit.train_set) + len(fit.val_set) + len(test.test_set) == 30


def test_the_default_cache_is_the_same_from_any_folder_and_nothing_is_written_there(tmp_path, monkeypatch, user_cache):
    root = write_classes(tmp_path / "photos", per_class=4)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    monkeypatch.chdir(here)
    first = folder_module(root)
    first.setup("fit")
    monkeypatch.chdir(there)
    monkeypatch.setattr("lightning_cnn.data.image_folder.decode_files", refuse_to_decode)
    second = folder_module(root)
    second.setup("fit")  # read from the cache the first wrote
    assert torch.equal(second.train_set.images, first.train_set.images)
    assert first.cache_dir == second.cache_dir == user_cache
    assert list(here.iterdir()) == [] and list(there.iterdir()) == []
    assert len(list((user_cache / "images").glob("*.pt"))) == 1


def test_the_default_cache_folder_follows_xdg_else_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("LIGHTNING_CNN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir(None) == tmp_path / "xdg" / "lightning_cnn"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as the XDG specification says
    assert resolve_cache_dir(None) == tmp_path / "home" / ".cache" / "lightning_cnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_cache_dir(None) == tmp_path / "home" / ".cache" / "lightning_cnn"
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "mine"))
    assert resolve_cache_dir(None) == tmp_path / "mine"
    assert resolve_cache_dir(tmp_path / "given") == tmp_path / "given"


def test_two_data_folders_never_share_cache_entries(tmp_path, user_cache, decoded):
    root = write_classes(tmp_path / "photos", per_class=4)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # the same names, sizes and modification times
    folder_module(root).setup("fit")
    decoded.clear()
    folder_module(copy).setup("fit")
    assert len(decoded) == 12 and all(path.is_relative_to(copy) for path in decoded)
    assert len(list((user_cache / "images").glob("*.pt"))) == 2


def test_the_test_command_from_another_folder_decodes_the_held_out_files_only(
    run_cli: Callable[..., tuple[int, str]], tmp_path, monkeypatch, user_cache, decoded
):
    root = write_classes(tmp_path / "photos", per_class=10)
    runs, here, elsewhere = tmp_path / "runs", tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(here)
    code, err = run_cli(
        "fit", "--data", "ImageFolderDataModule", "--data.root", root, "--data.test_size", "0.2",
        "--data.image_size", "8", "--model", "ConvNet", "--trainer.default_root_dir", runs,
        "--trainer.max_epochs", "1", "--preview.num_images", "0", *QUICK,
    )  # fmt: skip
    assert code == 0, err
    decoded_by_fit = set(decoded)
    decoded.clear()
    shutil.rmtree(user_cache)  # reading any training image would now decode it
    monkeypatch.chdir(elsewhere)
    run = runs / "lightning_logs" / "version_0"
    code, err = run_cli(
        "test", "--config", run / "config.yaml", "--ckpt_path", "best", "--trainer.limit_test_batches", "1"
    )
    assert code == 0, err
    assert len(decoded) == 6 and set(decoded).isdisjoint(decoded_by_fit)
    assert list(here.iterdir()) == [] and list(elsewhere.iterdir()) == []
