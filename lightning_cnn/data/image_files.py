"""Image files → one uint8 tensor: parallel decoding, resizing, archives unpacked once, an on-disk cache.

Kept apart from the data module so the file handling can be read (and tested) on its own.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image, ImageOps
from torch import Tensor

from lightning_cnn.data.checksums import verify_file
from lightning_cnn.errors import CorruptDataError, DataNotFoundError

CACHE_ENV_VAR = "LIGHTNING_CNN_CACHE"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
CACHE_FORMAT = 3  # bump when what is cached changes, so old cache files are ignored (3: entries of some of the files)


def default_cache_dir() -> Path:
    """The user's cache folder for this package: ``$XDG_CACHE_HOME/lightning_cnn`` (an absolute one, as the XDG
    specification requires), else ``~/.cache/lightning_cnn``; the same whatever the current folder."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path("~/.cache").expanduser()
    return base / "lightning_cnn"


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """Where decoded images and unpacked archives go: ``cache_dir``, else ``$LIGHTNING_CNN_CACHE``, else the user's
    cache folder (``default_cache_dir``). Never inside the dataset folder, which may be read-only or shared."""
    chosen = cache_dir or os.environ.get(CACHE_ENV_VAR) or default_cache_dir()
    return Path(chosen).expanduser().absolute()


def is_archive(path: Path) -> bool:
    return path.name.endswith(ARCHIVE_SUFFIXES)


def unpack_archive(archive: Path, cache_dir: Path) -> Path:
    """Unpack ``archive`` once into ``cache_dir/unpacked/<name>-<key>`` and return that folder.

    The key follows the archive's absolute path, size and modification time, so a changed archive is unpacked
    again, and two archives of one name never share a folder.
    Unpacking goes to a temporary folder renamed at the end: an interrupted run leaves nothing half-done,
    and two processes unpacking at once both end with the same complete folder.
    """
    if not archive.is_file():
        raise DataNotFoundError(f"archive not found: {archive}")
    stat = archive.stat()
    key = hashlib.sha1(f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = archive.name.removesuffix(next(s for s in ARCHIVE_SUFFIXES if archive.name.endswith(s)))
    target = cache_dir / "unpacked" / f"{stem}-{key}"
    if target.is_dir():
        return target
    verify_file(archive, archive.parent, fix="copy it again")  # checked when unpacked, not on every run
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")  # "data": no absolute paths, links out, or devices
        scratch.chmod(0o755)
        scratch.rename(target)
    except (tarfile.TarError, EOFError, OSError) as err:
        if not target.is_dir():
            raise CorruptDataError(f"cannot unpack {archive} into {target.parent} ({err})") from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def class_folders(folder: Path) -> list[str]:
    """Sorted names of the class sub-folders of ``folder`` (hidden ones skipped); a sub-folder without any file is
    no class: it is named in a warning and left out."""
    if not folder.is_dir():
        raise DataNotFoundError(f"image folder not found: {folder}")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    empty = [name for name in names if not _has_file(folder / name)]
    if empty:
        rank_zero_warn(f"ignoring empty class folder(s) in {folder}: {', '.join(empty)} (no files; not a class)")
    names = [name for name in names if name not in empty]
    if not names:
        raise DataNotFoundError(
            f"no class sub-folders in {folder}: expected {folder}/<class>/<image files> (JPEG, PNG, ...)"
        )
    return names


def _has_file(folder: Path) -> bool:
    """Whether any non-hidden file lies under ``folder`` (stops at the first)."""
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(not f.startswith(".") for f in files):
            return True
    return False


def _walk(folder: Path) -> list[tuple[Path, int, int]]:
    """(path, size, mtime_ns) of every non-hidden file under ``folder``, in sorted order, in one pass."""
    found = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                found += _walk(Path(entry.path))
            elif entry.is_file():
                stat = entry.stat()
                found.append((Path(entry.path), stat.st_size, stat.st_mtime_ns))
    return found


def list_files(folder: Path, classes: Sequence[str]) -> tuple[list[Path], list[int], list[tuple[str, int, int]]]:
    """Every non-hidden file under ``folder/<class>/`` (any depth), sorted, with its class index and
    its (relative path, size, modification time) for the cache key."""
    paths, labels, stats = [], [], []
    for label, name in enumerate(classes):
        if not (folder / name).is_dir():
            continue
        for path, size, mtime in _walk(folder / name):
            paths.append(path)
            labels.append(label)
            stats.append((str(path.relative_to(folder)), size, mtime))
    return paths, labels, stats


def folder_key(
    stats: Sequence[tuple[str, int, int]], size: tuple[int, int], channels: int, folder: Path | None = None
) -> str:
    """A key that changes when a file is added, removed or modified, or the decoding options change; with
    ``folder``, also with the folder's absolute path, so that the files of two data folders never share a key."""
    digest = hashlib.sha1(f"{CACHE_FORMAT}:{size}:{channels}".encode())
    if folder is not None:
        digest.update(f"{folder.resolve()}\n".encode())
    digest.update("\n".join(f"{name}:{n}:{mtime}" for name, n, mtime in stats).encode())
    return digest.hexdigest()[:16]


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer) grayscale scaled to 8 bits: PIL's own ``convert`` clips every value above 255
    to white, which turns a 16-bit image into a nearly blank one."""
    if image.mode not in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        return image
    pixels = np.asarray(image).astype(np.int64)
    if image.mode == "I" and pixels.max(initial=0) <= 255 and pixels.min(initial=0) >= 0:
        return Image.fromarray(pixels.astype(np.uint8), "L")  # 32-bit storage of 8-bit values
    return Image.fromarray((pixels.clip(0, 65535) >> 8).astype(np.uint8), "L")


def decode_file(path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image file (any format and mode PIL reads) as uint8 (height, width[, 3]) of ``size``: turned
    upright by its EXIF tag, resized on its shorter side and centre-cropped (nothing stretched)."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(to_8bit(image)).convert("RGB" if channels == 3 else "L")
        if image.size != (size[1], size[0]):
            image = ImageOps.fit(image, (size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def _decode_chunk(
    paths: Sequence[Path], size: tuple[int, int], channels: int
) -> tuple[list[np.ndarray | None], list[str]]:
    """Decode ``paths`` in this process; PIL and numpy only, so it is safe in a forked worker."""
    images: list[np.ndarray | None] = []
    errors = []
    for path in paths:
        try:
            images.append(decode_file(path, size, channels))
        except Exception as err:  # noqa: BLE001 - any unreadable file is reported and skipped, never fatal
            images.append(None)
            reason = " ".join(str(err).split()) or type(err).__name__
            errors.append(f"{path} ({reason[:120]})")
    return images, errors


def decode_files(
    paths: Sequence[Path], labels: Sequence[int], size: tuple[int, int], channels: int, workers: int
) -> tuple[Tensor, Tensor, list[str]]:
    """Decode ``paths`` in ``workers`` processes into uint8 (N, channels, *size) images and int64 labels.

    Processes, not threads: decoding small images is mostly Python work that holds the GIL. Files that
    cannot be decoded are left out; the third result names each with the reason.
    """
    chunk = 500
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    work = partial(_decode_chunk, size=size, channels=channels)
    if workers > 1 and len(chunks) > 1:
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context) as pool:
            results = list(pool.map(work, chunks))
    else:
        results = [work(part) for part in chunks]
    decoded = [image for images, _ in results for image in images]
    errors = [error for _, errs in results for error in errs]
    keep = [i for i, image in enumerate(decoded) if image is not None]
    if not keep:
        return torch.zeros(0, channels, *size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), errors
    stacked = torch.from_numpy(np.stack([decoded[i] for i in keep]))
    images = stacked.permute(0, 3, 1, 2) if stacked.ndim == 4 else stacked.unsqueeze(1)
    return images.contiguous(), torch.tensor([labels[i] for i in keep], dtype=torch.long), errors
