"""Checkpoint files: one way to read them (weights-only unless the user trusts the file), and the SHA-256 recorded
beside each one a run writes, checked on every read. The CLI's ``--ckpt_path``, ``predict-files``, ``ensemble``,
``export`` and ``load_trained`` all read through here; which file a run's ``best`` or ``last`` is, is
``run_folder``'s.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from lightning_cnn.errors import ConfigError, CorruptCheckpointError, UntrustedCheckpointError
from lightning_cnn.internals import saved_class_path

TRUST = "--trust_checkpoint"  # the option that lets a checkpoint hold more than weights and plain data
SUM_SUFFIX = ".sha256"  # beside each checkpoint a run writes: its SHA-256, in sha256sum's format
_verified: set[tuple[Path, int, int]] = set()  # files (as they are now: size, mtime) already found to match
_unrecorded: set[Path] = set()  # checkpoints without a record, said once each


def sum_file(path: Path) -> Path:
    """The SHA-256 record of checkpoint ``path`` (a link such as ``last.ckpt`` shares its target's)."""
    path = Path(path).resolve()
    return path.with_name(path.name + SUM_SUFFIX)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_sum(path: Path, *digests: str) -> None:
    """Record that checkpoint ``path`` must hash to one of ``digests``, atomically. While a checkpoint is replaced,
    the record accepts the old file's digest and the new one, so a kill at any moment leaves a file it accepts."""
    record = sum_file(path)
    partial = record.with_name(f"{record.name}.tmp")
    partial.write_text("".join(f"{digest}  {Path(path).name}\n" for digest in dict.fromkeys(digests)))
    os.replace(partial, record)


def recorded_sums(path: Path) -> set[str] | None:
    """The digests the record beside ``path`` accepts; None without a record (a checkpoint from elsewhere)."""
    record = sum_file(path)
    if not record.is_file():
        return None
    return {line.split()[0] for line in record.read_text().splitlines() if line.strip()}


def verifies(path: Path) -> bool:
    """Whether checkpoint ``path`` is the file its run wrote: its SHA-256 is one its record accepts."""
    sums = recorded_sums(path)
    stat = path.stat()
    key = (path.resolve(), stat.st_size, stat.st_mtime_ns)
    if sums is not None and key not in _verified and sha256(path) in sums:
        _verified.add(key)
    return key in _verified


def newest_verified(folder: Path, but: Path) -> Path | None:
    """The newest checkpoint in ``folder``, other than ``but``, that verifies."""
    others = [p for p in folder.glob("*.ckpt") if p.resolve() != but.resolve() and recorded_sums(p) is not None]
    return next((p for p in sorted(others, key=lambda p: p.stat().st_mtime, reverse=True) if verifies(p)), None)


def verify_checkpoint(path: Path) -> None:
    """A checkpoint whose bytes are not those its run wrote (a bad disk, a broken copy, an interrupted sync) is one
    line naming the file and the newest checkpoint of the run that still verifies; a checkpoint without a record
    loads, with one line saying it could not be verified."""
    if recorded_sums(path) is None:
        if path.resolve() not in _unrecorded:
            _unrecorded.add(path.resolve())
            sys.stderr.write(f"{path}: no SHA-256 record beside it (a checkpoint from elsewhere): not verified\n")
        return
    if verifies(path):
        return
    good = newest_verified(path.parent, path)
    then = (
        f"the newest checkpoint of this run that verifies is {good}: give --ckpt_path {good}"
        if good
        else "no other checkpoint of this run verifies"
    )
    raise CorruptCheckpointError(
        f"ckpt_path: {path} is not the file its run wrote (its SHA-256 differs from the one in"
        f" {sum_file(path).name}: a bad disk, a broken copy or an interrupted sync?); {then}"
    )


def load_checkpoint_file(path: Path, mmap: bool = False, trust: bool = False) -> Any:
    """``torch.load`` of ``path`` that runs no code from the file: only tensors and plain data are unpickled
    (``weights_only``), which is all a lightning_cnn checkpoint holds. A file that needs more is refused in one line
    before any of it runs, unless the user said with ``--trust_checkpoint`` that they trust it."""
    if trust:
        return torch.load(path, map_location="cpu", mmap=mmap, weights_only=False)
    try:
        return torch.load(path, map_location="cpu", mmap=mmap, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        what = f"it names {found[1]}" if found else "it holds Python objects"
        raise UntrustedCheckpointError(
            f"ckpt_path: {path} holds more than weights and plain data ({what}); loading it could run code written"
            f" into the file. Only for a file you trust, add {TRUST} true"
        ) from None


def read_checkpoint(path: Path, mmap: bool = False, trust: bool = False) -> dict[str, Any]:
    """The contents of checkpoint file ``path``, loaded without running code from it (see ``load_checkpoint_file``);
    with ``mmap`` the weights stay on disk until used, so reading the metadata is cheap. Anything but a readable
    Lightning checkpoint is one ``ConfigError`` line."""
    verify_checkpoint(path)  # first: a damaged file is named as such, whatever its damage made of it
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"ckpt_path: {path} is not a PyTorch checkpoint (a .ckpt written by a lightning_cnn run)")
    try:
        checkpoint = load_checkpoint_file(path, mmap=mmap, trust=trust)
    except UntrustedCheckpointError:
        raise
    except Exception as err:
        raise ConfigError(f"ckpt_path: cannot read {path} ({type(err).__name__}: {err})") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(
            f"ckpt_path: {path} is not a Lightning checkpoint (no 'state_dict' entry; a bare model state_dict or"
            " another file saved with torch.save); give a .ckpt written by a lightning_cnn run"
        )
    return checkpoint


def checkpoint_model(path: Path, trust: bool = False) -> str | None:
    """The class path of the model saved in checkpoint ``path``."""
    return saved_class_path(read_checkpoint(path, mmap=True, trust=trust).get("hyper_parameters") or {})


def class_of(class_path: str | None, base: type, what: str, path: Path) -> type:
    """The class a checkpoint names (importing its module), checked to be a ``base``.

    Lightning's ``base.load_from_checkpoint`` would build ``base`` itself (it drops the class path before
    instantiating), so loading goes through the concrete class.
    """
    if not class_path or "." not in class_path:
        raise ConfigError(f"ckpt_path: {path} does not record its {what} class; was it written by a lightning_cnn run?")
    module, name = class_path.rsplit(".", 1)
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"ckpt_path: {path} holds a {class_path}, which cannot be imported ({err})") from err
    if not (isinstance(found, type) and issubclass(found, base)):
        raise ConfigError(f"ckpt_path: {path} names {class_path} as its {what}, which is not a {base.__name__}")
    return found
