"""Input files are checked for shape, not only syntax: config and search-space files are UTF-8 YAML that gives
each key once and each section as a mapping; dataset files hold labels of the dataset's classes and images of its
size; an image folder has at least two classes, and an empty class folder is no class."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from lightning_cnn.data import ImageFolderDataModule
from tests.helpers.runs import QUICK
from tests.helpers.writers import synthetic_images, write_idx, write_sha256sums


def error_line(err: str) -> str:
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize(
    ("content", "code", "expected"),
    [
        (b"trainer:\n  max_epochs: 1\n# caf\xe9\n", 2, ["{path} is not UTF-8 text (byte 0xe9 at offset 30)"]),
        (b"trainer:\n  max_epochs: 1\n  max_epochs: 2\n", 2, ["{path}: key 'max_epochs' is given twice (lines 2, 3)"]),
        # a section of the wrong kind was dropped without a word: the run trained with no epoch limit
        (b"trainer: [max_epochs: 1]\n", 2, ["{path}: trainer: expected a mapping of trainer options", "a list"]),
        (b"checkpoint: 5\n", 2, ["checkpoint: expected a mapping of checkpoint options", "a number: 5"]),
        (b"trainer: fast\n", 2, ["trainer: expected a mapping of trainer options, got 'fast'"]),
        (b"model: 3\n", 2, ["model: expected a mapping of model options", "a number: 3"]),
    ],
)
def test_config_files_are_checked_for_shape(run_cli, mnist_dir, tmp_path, content, code, expected):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    root = tmp_path / "runs"
    data = ["--data.data_dir", mnist_dir]
    actual, err = run_cli("fit", "--config", path, *data, "--trainer.default_root_dir", root, *QUICK)
    assert actual == code
    line = error_line(err)
    for fragment in expected:
        assert fragment.format(path=path) in line
    assert not root.exists()


def test_sections_given_as_a_file_or_a_class_name_still_work(run_cli, mnist_dir, tmp_path):
    (tmp_path / "trainer.yaml").write_text("max_epochs: 1\nlimit_train_batches: 2\nlimit_val_batches: 2\n")
    (tmp_path / "config.yaml").write_text(f"trainer: {tmp_path / 'trainer.yaml'}\nmodel: MLP\nearly_stopping: null\n")
    code, err = run_cli(
        "fit", "--config", tmp_path / "config.yaml", "--data.data_dir", mnist_dir,
        "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"space:\n  model.optimizer.init_args.lr: {type: float, low: 0.001, high: 0.1}\n# \xff\n", "not UTF-8 text"),
        (b"trials: 2\ntrials: 3\nspace: {}\n", "key 'trials' is given twice (lines 1, 2)"),
    ],
)
def test_search_space_files_are_checked_like_configs(run_cli, tmp_path, content, expected):
    path = tmp_path / "space.yaml"
    path.write_bytes(content)
    code, err = run_cli("search", "--space", path, "--trainer.default_root_dir", tmp_path / "runs")
    assert code == 2
    line = error_line(err)
    assert f"search space {path}" in line and expected in line
    assert not (tmp_path / "runs").exists()


def mnist_copy(mnist_dir: Path, tmp_path: Path) -> Path:
    """A copy of the MNIST fixture to alter; its SHA256SUMS is written again after, as a user's own copy would
    have it, so the checksums cover nothing the user did not mean."""
    root = tmp_path / "data"
    shutil.copytree(mnist_dir / "MNIST", root / "MNIST")
    return root


def test_labels_outside_the_classes_are_one_line_naming_the_file(run_cli, mnist_dir, tmp_path):
    root = mnist_copy(mnist_dir, tmp_path)
    labels = root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    _, values = synthetic_images(1200, (28, 28, 1), seed=0)
    values[7] = 12
    write_idx(labels, values.astype(np.uint8))
    write_sha256sums(root)
    code, err = run_cli("fit", "--data.data_dir", root, "--trainer.default_root_dir", tmp_path / "runs", *QUICK)
    assert code == 1
    line = error_line(err)
    assert f"{labels}: 1 of 1200 labels are outside 0..9 (the first is 12, at image 7)" in line


def test_images_of_another_size_are_one_line_naming_the_file(run_cli, mnist_dir, tmp_path):
    root = mnist_copy(mnist_dir, tmp_path)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    write_idx(images, synthetic_images(1200, (32, 32, 1), seed=0)[0][..., 0])
    write_sha256sums(root)
    code, err = run_cli("fit", "--data.data_dir", root, "--trainer.default_root_dir", tmp_path / "runs", *QUICK)
    assert code == 1
    assert f"{images}: the images are 1×32×32 (channels×height×width), expected 1×28×28" in error_line(err)


def test_an_image_folder_needs_two_classes_and_skips_empty_ones(run_cli, image_folder_dir, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(image_folder_dir / "folders" / "train" / "cat", folder / "cat")
    (folder / "dog").mkdir()
    data = ["--data", "ImageFolderDataModule", "--data.root", folder]
    with pytest.warns(UserWarning, match=f"empty class folder.* in {folder}: dog"):
        code, err = run_cli("fit", *data, "--trainer.default_root_dir", tmp_path / "runs", *QUICK)
    assert code == 2
    assert f"data.root: {folder} has one class folder (cat); a classifier needs at least two" in error_line(err)
    shutil.copytree(image_folder_dir / "folders" / "train" / "dog", folder / "bird")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = ImageFolderDataModule(root=str(folder))
    assert module.classes == ("bird", "cat") and module.num_classes == 2
    assert any(f"{folder}: dog" in str(w.message) for w in caught)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data.batch_size", "0"], "data.batch_size must be at least 1, got 0"),
        (["--data.eval_batch_size", "0"], "data.eval_batch_size must be at least 1, got 0"),
        (["--data.val_size", "0"], "data.val_size must be a number of images (1 or more) or a fraction in (0, 1)"),
    ],
)
def test_zero_and_negative_sizes_are_refused_at_construction(run_cli, mnist_dir, tmp_path, args, expected):
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *QUICK, *args)
    assert code == 2
    assert expected in error_line(err)
    assert list(tmp_path.iterdir()) == []
