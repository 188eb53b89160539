"""Tiny datasets in the official file formats, written by the tests themselves (no download, no real data)."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
from PIL import Image


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


def write_sha256sums(root: Path) -> None:
    """List every file under ``root`` in ``root/SHA256SUMS``, as the offline data copy does: the data modules
    check files against it (the synthetic files would fail the official MNIST checksums)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root)}" for p in files]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


IMAGE_FOLDER_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_image_folder(folder: Path, n: int, seed: int) -> None:
    """``folder/<class>/NNNN.{png,jpg}``: ``n`` synthetic images of mixed sizes and modes (RGB, L, RGBA, P)."""
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


def write_cifar100_binary(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """``cifar-100-binary.tar.gz`` as published: ``cifar-100-binary/<split>.bin`` for each of ``splits`` (images
    (N, 32, 32, 3) uint8, coarse and fine labels), records of <coarse><fine><R plane><G plane><B plane>, and the
    two label-name files."""
    import io
    import tarfile

    from lightning_cnn.data.cifar100 import COARSE_CLASSES, FINE_CLASSES

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(f"cifar-100-binary/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w:gz") as tar:
        for split, (images, coarse, fine) in splits.items():
            planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
            records = np.concatenate([coarse[:, None], fine[:, None], planes], axis=1).astype(np.uint8)
            add(tar, f"{split}.bin", records.tobytes())
        add(tar, "fine_label_names.txt", ("\n".join(FINE_CLASSES) + "\n").encode())
        add(tar, "coarse_label_names.txt", ("\n".join(COARSE_CLASSES) + "\n").encode())


def write_svhn_mat(path: Path, images: np.ndarray, digits: np.ndarray) -> None:
    """An SVHN format-2 ``.mat`` file (MATLAB v5, compressed): ``X`` 32×32×3×N uint8 and ``y`` N×1 labels 1 to 10,
    the digit 0 written as 10, as the official files hold them."""
    from scipy.io import savemat

    labels = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]
    savemat(path, {"X": np.ascontiguousarray(images.transpose(1, 2, 3, 0)), "y": labels}, do_compression=True)


def write_two_classes(
    root: Path, per_class: int, names: tuple[str, str] = ("cat", "dog"), contrast: float = 50.0
) -> Path:
    """``root/<name>/<i>.png``: a two-class image folder of ``per_class`` 24×24 RGB noise images a class, class 1
    ``contrast`` grey levels brighter on average than class 0 (0: nothing tells the classes apart)."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(100 + contrast * k, 40, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root
