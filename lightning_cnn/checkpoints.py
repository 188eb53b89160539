"""Runs and their checkpoints: one rule for finding a run folder, its ``best`` and ``last`` checkpoint, and for
reading a checkpoint file. The CLI's ``--ckpt_path``, ``predict-files``, ``ensemble``, ``export`` and
``load_trained`` all go through here, so they always pick the same file.

A run folder is ``<root>/lightning_logs/version_N`` with ``config.yaml`` and ``checkpoints/``; ``last.ckpt`` records
(in its checkpoint callback's state) which file was the best.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import re
import sys
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lightning_cnn.errors import ConfigError, CorruptCheckpointError, UntrustedCheckpointError
from lightning_cnn.internals import saved_class_path

RUNS_FOLDER = "lightning_logs"
LAST = "last.ckpt"


def run_version(folder: Path) -> int:
    """N for a ``version_N`` folder, -1 for anything else."""
    prefix, _, number = folder.name.partition("_")
    return int(number) if prefix == "version" and number.isdigit() else -1


def runs_under(root: str | Path) -> Path:
    """The folder that holds the ``version_N`` run folders of ``default_root_dir`` ``root``."""
    return Path(root or ".") / RUNS_FOLDER


def run_of_configs(config_files: Sequence[Any]) -> Path | None:
    """The run folder of a saved ``lightning_logs/version_N/config.yaml`` among the ``--config`` files."""
    for config_file in reversed(config_files):
        folder = Path(getattr(config_file, "absolute", None) or str(config_file)).parent
        if run_version(folder) >= 0:
            return folder
    return None


def newest_run(runs: Path) -> Path | None:
    """The run folder under ``runs`` with the highest version that has a ``last.ckpt``."""
    found = sorted(runs.glob(f"version_*/checkpoints/{LAST}"), key=lambda p: run_version(p.parent.parent))
    return found[-1].parent.parent if found else None


def _recorded_best_path(last: Path) -> str | None:
    """The best checkpoint's path as the checkpoint callback in ``last`` recorded it, if it recorded one."""
    try:
        state = read_checkpoint(last, mmap=True).get("callbacks", {})
    except ConfigError:  # an unreadable or untrusted last.ckpt is reported when it is loaded
        return None
    paths = (value.get("best_model_path") for value in state.values() if isinstance(value, dict))
    return next((path for path in paths if path), None)


def recorded_best(last: Path) -> Path | None:
    """The best checkpoint recorded by the checkpoint callback in ``last``, if its file is there."""
    return _best_file(last, _recorded_best_path(last))


def _best_file(last: Path, best: str | None) -> Path | None:
    """The file of recorded best path ``best``: the one of that name beside ``last`` (the run's own, also when its
    folder was copied or moved), else where it was written."""
    if best:
        for candidate in (last.parent / Path(best).name, Path(best)):
            if candidate.is_file():
                return candidate
    return None


def run_checkpoint(run_dir: Path, which: str) -> Path:
    """Checkpoint ``which`` (``last`` or ``best``) of run folder ``run_dir``, or one line saying what to do."""
    last = run_dir / "checkpoints" / LAST
    if not last.is_file():
        raise ConfigError(
            f"ckpt_path: '{which}': {run_dir} has no checkpoint yet (it stopped before its first epoch ended);"
            " start it again without --ckpt_path, or give the path of a checkpoint file"
        )
    if which == "last":
        return last
    best = recorded_best(last)
    if best is None:
        raise ConfigError(f"ckpt_path: 'best' is not recorded in {last} (or its file is gone); give a checkpoint path")
    return best


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or for a run folder (``lightning_logs/version_N``, or its ``checkpoints``
    folder) the best checkpoint its ``last.ckpt`` recorded, else ``last.ckpt``, else its only checkpoint."""
    given = Path(path)
    if given.is_file():
        return given
    if not given.is_dir():
        raise ConfigError(f"ckpt_path: {path} is neither a checkpoint file nor a run folder (lightning_logs/version_N)")
    folder = given / "checkpoints" if (given / "checkpoints").is_dir() else given
    last = folder / LAST
    if last.is_file():
        recorded = _recorded_best_path(last)
        best = _best_file(last, recorded)
        if best is None and recorded:
            warnings.warn(f"the best checkpoint {last} records is gone; using {last}", stacklevel=2)
        return best or last
    found = sorted(folder.glob("*.ckpt"))
    if len(found) == 1:
        return found[0]
    listed = ", ".join(p.name for p in found) if found else "none"
    raise ConfigError(
        f"ckpt_path: {folder} has no {LAST} to tell the best checkpoint (checkpoints: {listed}); give one file"
    )


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
