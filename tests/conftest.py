"""Tiny datasets in the official file formats, and a helper that runs the CLI in-process."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import CIFAR10

from lightning_cnn.commands import main


def synthetic_images(n: int, shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable uint8 images (N, H, W, C): class k is a bright block at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    labels = rng.integers(0, 10, size=n)
    images = rng.integers(0, 60, size=(n, h, w, c), dtype=np.uint8)
    for i, k in enumerate(labels):
        top, left = 2 + (k // 5) * (h // 2), 1 + (k % 5) * (w // 5)
        images[i, top : top + h // 3, left : left + w // 6] = 255
    return images, labels


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write uint8 ``array`` in the gzipped IDX format of the official MNIST files."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding a 1,200 + 300 image MNIST in the official gzipped IDX layout."""
    root = tmp_path_factory.mktemp("mnist_data")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n, seed in (("train", 1200, 0), ("t10k", 300, 1)):
        images, labels = synthetic_images(n, (28, 28, 1), seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images[..., 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    write_sha256sums(root)
    return root


def write_sha256sums(root: Path) -> None:
    """List every file under ``root`` in ``root/SHA256SUMS``, as the offline data copy does: the data modules
    check files against it (the synthetic files would fail the official MNIST checksums)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root)}" for p in files]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


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


# Options that keep a test run small and quiet; the tests add the data and the run folder.
QUICK = [
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.accelerator",
    "cpu",
    "--data.val_size",
    "0.2",
]


IMAGE_FOLDER_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_image_folder(folder: Path, n: int, seed: int) -> None:
    """``folder/<class>/NNNN.{png,jpg}``: ``n`` synthetic images of mixed sizes and modes (RGB, L, RGBA, P)."""
    from PIL import Image

    images, labels = synthetic_images(n, (32, 32, 3), seed)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        class_dir = folder / IMAGE_FOLDER_CLASSES[label]
        class_dir.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray(image)
        kind = i % 4
        if kind == 1:
            pil.resize((40, 30)).convert("L").save(class_dir / f"{i:04d}.png")
        elif kind == 2:
            pil.convert("RGBA").save(class_dir / f"{i:04d}.png")
        elif kind == 3:
            pil.resize((24, 48)).convert("P").save(class_dir / f"{i:04d}.png")
        else:
            pil.save(class_dir / f"{i:04d}.jpg", quality=90)


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


@pytest.fixture
def image_folder_dir(image_folder_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The image-folder data root, with the decode cache sent to this test's own temporary folder."""
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))
    return image_folder_files
