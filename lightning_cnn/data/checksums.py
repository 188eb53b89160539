"""Dataset files checked against their published checksums before training reads them.

A ``SHA256SUMS`` file at the data root (``sha256sum`` format, paths relative to the root, as an offline
copy of the data may ship) lists the expected sums; files it does not list are checked against the official MD5
that torchvision publishes for its downloads, when there is one. A mismatch stops the run with one line naming
the file and how to get a good copy, so training never starts on a truncated or altered file.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from lightning_cnn.errors import CorruptDataError

MANIFEST = "SHA256SUMS"


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def _verified(path: Path, size: int, mtime_ns: int, algorithm: str, expected: str) -> bool:
    """Whether ``path`` (as it is now: size and mtime are part of the key) hashes to ``expected``."""
    return file_digest(path, algorithm) == expected


def manifest_sums(data_root: Path) -> dict[Path, str]:
    """``{absolute path: sha256}`` from ``data_root/SHA256SUMS``, empty when there is none."""
    manifest = data_root / MANIFEST
    if not manifest.is_file():
        return {}
    sums = {}
    for line in manifest.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            sums[(data_root / name.lstrip("*")).resolve()] = digest.lower()
    return sums


def verify_file(path: Path, data_root: Path, official_md5: str | None = None, fix: str = "") -> None:
    """Raise ``CorruptDataError`` when ``path`` does not match its sum in ``data_root/SHA256SUMS`` or, if it
    is not listed there, ``official_md5``; files with neither are accepted as they are."""
    expected = manifest_sums(data_root).get(path.resolve())
    algorithm, source = "sha256", f"listed in {data_root / MANIFEST}"
    if expected is None:
        if official_md5 is None:
            return
        expected, algorithm, source = official_md5, "md5", "the official checksum"
    stat = path.stat()
    if not _verified(path.resolve(), stat.st_size, stat.st_mtime_ns, algorithm, expected):
        raise CorruptDataError(
            f"{path} does not match {source} ({algorithm}): the file is truncated or altered;"
            f" delete it and {fix or 'download or copy it again'}"
        )
