"""A user's own small image folder just works with the defaults: a validation split sized to the data, a test
split held out of one folder per class on request, limited evaluations that sample every class, and loss and
learning-rate curves however few batches an epoch has."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_cnn.data import ImageFolderDataModule
from lightning_cnn.data.base import split_indices, stratified_holdout
from tests.helpers.runs import scalars


def write_classes(root: Path, names: tuple[str, ...], per_class: int) -> Path:
    """``root/<name>/<i>.png``: ``per_class`` small images a class, each class its own brightness."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(60 + 70 * k, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))


def test_the_default_validation_split_is_a_tenth_and_at_most_5000_images():
    assert len(split_indices(60, None, 42)[1]) == 6
    assert len(split_indices(16, None, 42)[1]) == 2
    assert len(split_indices(3, None, 42)[1]) == 1
    assert len(split_indices(60_000, None, 42)[1]) == 5000  # MNIST: the split it always had
    assert torch.equal(split_indices(60_000, None, 42)[1], split_indices(60_000, 5000, 42)[1])


def test_a_held_out_test_split_takes_each_class_in_its_share_seeded():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    kept, held = stratified_holdout(labels, 0.2, seed=7)
    assert sorted(labels[held].tolist()) == [0] * 10 + [1] * 6 + [2] * 4
    assert set(kept.tolist()).isdisjoint(held.tolist()) and len(kept) + len(held) == 100
    assert torch.equal(held, stratified_holdout(labels, 0.2, seed=7)[1])
    assert not torch.equal(held, stratified_holdout(labels, 0.2, seed=8)[1])
    assert len(stratified_holdout(labels, 7, seed=7)[1]) == 7  # a count: the remainders decide the last images


def test_a_3_class_folder_of_20_images_each_trains_with_the_defaults(run_cli, tmp_path, cache):
    root = write_classes(tmp_path / "photos", ("cat", "dog", "fox"), 20)
    # only what a new user gives: the data, a place for the run, and a short run
    code, err = run_cli(
        "fit", "--data", "ImageFolderDataModule", "--data.root", root, "--trainer.default_root_dir", tmp_path,
        "--trainer.max_epochs", "2",
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    curves = scalars(run)
    assert len(curves["train/loss"]) >= 2 and curves["val/acc"], sorted(curves)  # one batch an epoch, still a curve
    assert any(tag.startswith("lr") for tag in curves), sorted(curves)


def test_16_images_in_folders_named_with_spaces_and_accents_train_and_test_on_a_held_out_split(
    run_cli, tmp_path, cache
):
    root = write_classes(tmp_path / "mes photos", ("chat noir", "épagneul", "renard roux", "élan"), 4)
    code, err = run_cli(
        "fit", "--data", "ImageFolderDataModule", "--data.root", root, "--data.test_size", "0.25",
        "--trainer.default_root_dir", tmp_path, "--trainer.max_epochs", "1", "--test_after_fit", "true",
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "lightning_logs" / "version_0" / "metrics.json").is_file()


def test_test_size_and_test_dir_together_are_one_line(run_cli, tmp_path, cache):
    root = write_classes(tmp_path / "data" / "train", ("a", "b"), 3).parent
    write_classes(root / "test", ("a", "b"), 2)
    code, err = run_cli(
        "fit", "--data", "ImageFolderDataModule", "--data.root", root, "--data.train_dir", "train",
        "--data.test_dir", "test", "--data.test_size", "0.2", "--trainer.default_root_dir", tmp_path,
    )  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and "give one of them" in errors[0], err
    assert not (tmp_path / "lightning_logs").exists()


def test_a_limited_test_of_a_class_ordered_folder_samples_every_class(tmp_path, cache):
    root = write_classes(tmp_path / "data" / "test", ("a", "b", "c"), 10).parent
    write_classes(root / "train", ("a", "b", "c"), 4)
    datamodule = ImageFolderDataModule(root=str(root), train_dir="train", test_dir="test", eval_batch_size=6)
    datamodule.setup("test")
    datamodule.trainer = SimpleNamespace(limit_test_batches=1, world_size=1)
    first = next(iter(datamodule.test_dataloader()))[1]
    assert len(set(first.tolist())) > 1  # the folder's order would give six images of class a
    datamodule.trainer = SimpleNamespace(limit_test_batches=1.0, world_size=1)
    assert next(iter(datamodule.test_dataloader()))[1].tolist() == [0] * 6  # the whole split: its own order
