"""Fixtures: tiny datasets in the official file formats (written by ``tests.helpers.writers``) and the CLI run
in-process."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import CIFAR10

from lightning_cnn.__main__ import main
from tests.helpers.writers import (
    synthetic_images,
    write_cifar100_binary,
    write_idx,
    write_image_folder,
    write_sha256sums,
    write_svhn_mat,
)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding a 1,200 + 300 image MNIST in the official gzipped IDX layout, and the same files as
    Fashion-MNIST and KMNIST (``FashionMNIST/raw``, ``KMNIST/raw``), which share the format."""
    root = tmp_path_factory.mktemp("mnist_data")
    for folder in ("MNIST", "FashionMNIST", "KMNIST"):
        raw = root / folder / "raw"
        raw.mkdir(parents=True)
        for prefix, n, seed in (("train", 1200, 0), ("t10k", 300, 1)):
            images, labels = synthetic_images(n, (28, 28, 1), seed)
            write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images[..., 0])
            write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    write_sha256sums(root)
    return root


@pytest.fixture(scope="session")
def cifar10_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A data root with a 5 × 100 + 100 image CIFAR-10 in the official python-batch format, and its MD5s."""
    root = tmp_path_factory.mktemp("cifar10_data")
    folder = root / CIFAR10.base_folder
    folder.mkdir()
    md5s = {}
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        images, labels = synthetic_images(100, (32, 32, 3), seed=10 + i)
        batch = {  # the official batches are Python 2 pickles: str keys once read as latin-1
            "batch_label": name,
            "labels": labels.tolist(),
            "data": images.transpose(0, 3, 1, 2).reshape(100, -1),  # rows of R, G, B planes
            "filenames": [f"{name}_{j}.png" for j in range(100)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
        md5s[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    md5s["batches.meta"] = hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest()
    return root, md5s


@pytest.fixture
def cifar10_dir(cifar10_files: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CIFAR-10 fixture, with torchvision's expected MD5 sums swapped for the fixture's own."""
    root, md5s = cifar10_files
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{j}", md5s[f"data_batch_{j}"]] for j in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setitem(CIFAR10.meta, "md5", md5s["batches.meta"])
    return root


def cifar100_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` synthetic images with fine labels 0..99 (ten per synthetic class) and coarse labels ``fine // 5``."""
    images, labels = synthetic_images(n, (32, 32, 3), seed)
    fine = labels * 10 + np.random.default_rng(seed).integers(0, 10, size=n)
    return images, fine // 5, fine


@pytest.fixture(scope="session")
def cifar100_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding a 300 + 100 image ``cifar-100-binary.tar.gz`` in the official binary format, with a
    ``SHA256SUMS`` that stands in for the official MD5 of the archive."""
    root = tmp_path_factory.mktemp("cifar100_data")
    write_cifar100_binary(
        root / "cifar-100-binary.tar.gz", {"train": cifar100_split(300, 30), "test": cifar100_split(100, 31)}
    )
    write_sha256sums(root)
    return root


@pytest.fixture(scope="session")
def svhn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding a 300 + 100 (+ 200 extra) image SVHN under ``SVHN/``, in the official ``.mat`` format
    (the digit 0 labelled 10), with a ``SHA256SUMS`` that stands in for the official MD5 sums."""
    root = tmp_path_factory.mktemp("svhn_data")
    (root / "SVHN").mkdir()
    for split, n, seed in (("train", 300, 40), ("test", 100, 41), ("extra", 200, 42)):
        write_svhn_mat(root / "SVHN" / f"{split}_32x32.mat", *synthetic_images(n, (32, 32, 3), seed))
    write_sha256sums(root)
    return root


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str]]:
    """Run ``python -m lightning_cnn ARGS`` in this process; returns (exit code, stderr)."""

    def run(*args: str) -> tuple[int, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        return code, capsys.readouterr().err

    return run


@pytest.fixture(scope="session")
def image_folder_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with ``cifar10-jpeg.tar.gz`` in the layout of the shared JPEG copy (train/ and test/ of
    class folders, 200 + 50 small images) and the same folders unpacked under ``folders/``."""
    import tarfile

    root = tmp_path_factory.mktemp("image_folder_data")
    write_image_folder(root / "folders" / "train", 200, seed=20)
    write_image_folder(root / "folders" / "test", 50, seed=21)
    with tarfile.open(root / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(root / "folders" / split, arcname=split)
    return root


@pytest.fixture(scope="session")
def mnist_pairs_files(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding ``mnist-pairs``: 80 + 24 pairs of the MNIST fixture's digits side by side, with their
    ``train.csv`` and ``test.csv``, as the multi-label recipes read them."""
    from benchmarks.multilabel import build_pairs

    root = tmp_path_factory.mktemp("mnist_pairs_data")
    build_pairs(root / "mnist-pairs", sizes=(80, 24), data_dir=str(mnist_dir))
    return root


@pytest.fixture
def mnist_pairs_dir(mnist_pairs_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The MNIST-pairs data root, with the decode cache sent to this test's own temporary folder."""
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))
    return mnist_pairs_files


@pytest.fixture
def image_folder_dir(image_folder_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The image-folder data root, with the decode cache sent to this test's own temporary folder."""
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))
    return image_folder_files
