"""Run folders, in one place: a run is ``<root>/lightning_logs/version_N`` with ``config.yaml`` and ``checkpoints/``.
Here are naming and finding them, their ``best`` and ``last`` checkpoints (``last.ckpt`` records in its checkpoint
callback's state which file was the best), claiming the next free ``version_N`` (two runs started together never
share one), the lock that keeps a second process out of a run while one trains or resumes it, the name of the config
a later command saves in a run, the folders of the tools' studies, and what a failed command removes or keeps.

The lock is ``fcntl.flock`` on ``RUN/run.lock``: the kernel drops it when its process ends, however it ends
(SIGKILL included), so a killed run never leaves its folder locked. Where ``fcntl`` is missing (Windows) runs
are not locked.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from lightning_cnn.checkpoints import read_checkpoint, recorded_sums, sum_file, verifies
from lightning_cnn.errors import ConfigError, RunInUseError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

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


LOCK_FILE = "run.lock"

# the run folders this process holds locked, with the open lock file that holds each
_held: dict[Path, IO[str]] = {}


def next_version(runs: Path) -> int:
    """One more than the highest ``version_N`` under ``runs`` (0 when there is none)."""
    return max((run_version(p) for p in runs.glob("version_*")), default=-1) + 1


def claim_version(runs: Path, version: int = 0) -> int:
    """The first ``version_N`` from ``version`` on that this call could create under ``runs``, created: the
    creation is what claims it, so concurrent runs that listed the same folder still get distinct ones."""
    while True:
        try:
            os.makedirs(runs / f"version_{version}")
            return version
        except FileExistsError:
            version += 1


def lock_run(run_dir: Path) -> None:
    """Hold ``run_dir`` for this process until ``release_runs`` or the process's end; another process holding it
    is one ``RunInUseError`` line, raised before anything in the folder is written."""
    key = Path(run_dir).resolve()
    if fcntl is None or key in _held or rank_zero_only.rank != 0:  # the other processes of a run are its own
        return
    lock = open(key / LOCK_FILE, "a")  # noqa: SIM115 (held open on purpose: closing it releases the lock)
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise RunInUseError(
            f"{run_dir} is in use by another process (it holds {key / LOCK_FILE}); wait until that run ends,"
            " or stop it, then resume"
        ) from None
    _held[key] = lock


def release_runs() -> None:
    """Release every run folder this process holds."""
    while _held:
        _, lock = _held.popitem()
        lock.close()


def remove_if_untrained(run_dir: Path) -> bool:
    """Delete run folder ``run_dir`` unless it holds a checkpoint; True when it was deleted."""
    if not run_dir.is_dir() or any(run_dir.rglob("*.ckpt")):
        return False
    lock = _held.pop(run_dir.resolve(), None)
    if lock is not None:
        lock.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    return not run_dir.exists()


def last_good_checkpoint(run_dir: Path, saved: list[Path]) -> Path | None:
    """The checkpoint a failed run leaves: the first of ``saved`` (the checkpoint callback's last and best) that
    exists, else the newest ``.ckpt`` in ``run_dir`` (a half-written one is never a ``.ckpt``)."""
    newest = sorted(run_dir.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)[-1:]
    found = [p for p in saved if p.is_file()][:1] or newest
    return found[0] if found else None


def set_aside_damaged_last(run_dir: Path, resumed_from: Path) -> None:
    """Before a run resumes from another of its checkpoints because its ``last.ckpt`` no longer verifies: keep that
    file's bytes as ``last.ckpt.damaged`` so the resumed run writes ``last.ckpt`` anew (Lightning would write
    ``last-v1.ckpt`` beside it, and ``--ckpt_path last`` would keep finding the damaged one)."""
    last = run_dir / "checkpoints" / LAST
    if not last.is_file() or last.resolve() == resumed_from.resolve() or recorded_sums(last) is None:
        return
    if verifies(last):
        return
    damaged = last.with_name(f"{LAST}.damaged")
    os.replace(last, damaged)
    sum_file(last).replace(damaged.with_name(f"{damaged.name}.sha256"))
    rank_zero_info(f"{last} does not verify: kept as {damaged.name}; the resumed run writes {LAST} anew")


def claim_and_lock(runs: Path, version: int) -> int:
    """Claim ``runs/version_N`` from ``version`` up and hold it for this process (``run_folder``); the other
    ranks of a run only read the number."""
    if rank_zero_only.rank != 0:
        return version
    version = claim_version(runs, version)
    lock_run(runs / f"version_{version}")
    return version


def holds_nothing(folder: str | os.PathLike) -> bool:
    """True when a run folder holds no record of a run: nothing, or TensorBoard event files with only their
    header (a run that failed before logging anything)."""
    if not os.path.isdir(folder):
        return False
    names = [name for name in os.listdir(folder) if name != LOCK_FILE]
    return all(
        name.startswith("events.out.tfevents.") and _only_file_header(os.path.join(folder, name)) for name in names
    )


def _only_file_header(path: str) -> bool:
    """True when a TensorBoard event file holds no record after the ``file_version`` one every file opens with
    (TFRecord framing: 8-byte length, 4-byte CRC, data, 4-byte CRC)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return True
        (length,) = struct.unpack("<Q", head)
        f.seek(8 + 4 + length + 4)
        return f.read(1) == b""


def abandoned(run_dir: Path) -> bool:
    """True when run folder ``run_dir`` holds no checkpoint and no process holds it: a run killed before its first
    checkpoint, which nothing can resume (its lock is taken here, and given up again by ``remove_if_untrained`` or
    ``release_runs``)."""
    if any(run_dir.rglob("*.ckpt")):
        return False
    try:
        lock_run(run_dir)
    except RunInUseError:
        return False
    return True


def give_back(folder: str | os.PathLike) -> None:
    """Remove a claimed run folder that holds nothing, so a run that failed before logging leaves no trace."""
    if holds_nothing(folder):
        remove_if_untrained(Path(folder))


class RunFolder:
    """``<root>/lightning_logs/version_N``, shared by all loggers of one run; ``N`` is claimed on first use (a
    run stopped by bad input before that creates nothing), or given when a run is resumed."""

    def __init__(self, root: str | os.PathLike, version: int | None = None) -> None:
        self.runs = runs_under(Path(root).absolute())
        self._version = version
        self.resumed = version is not None
        self.claimed = False

    @property
    def version(self) -> int:
        if self._version is None:
            self._version = claim_and_lock(self.runs, next_version(self.runs))
            self.claimed = True
        return self._version

    @property
    def path(self) -> Path:
        return self.runs / f"version_{self.version}"

    def release_if_unused(self) -> None:
        if self.claimed and rank_zero_only.rank == 0:
            give_back(self.path)


def config_name(run_dir: Path, subcommand: str | None) -> str:
    """The file a command that goes on in an existing run saves its config as, beside the run's own
    ``config.yaml``: ``config_resumed_N.yaml`` for a resumed ``fit``, ``config_test_N.yaml`` for a ``test``..."""
    kind = "resumed" if subcommand == "fit" else subcommand
    return f"config_{kind}_{1 + sum(1 for _ in run_dir.glob(f'config_{kind}_*.yaml'))}.yaml"


def after_failure(folder: RunFolder, existing: Path | None, trainer: Any, err: BaseException) -> None:
    """After a failed command: remove the run folder it created when nothing was trained yet, else add to ``err``
    which folder and checkpoint were kept (``existing``: the run folder a resume or an evaluation went on in)."""
    created = folder.path if folder.claimed else None
    if created is None and trainer.global_step == 0:
        return  # stopped before it trained or made a folder: the run it names is as it was
    if created and trainer.global_step == 0 and remove_if_untrained(created):
        return
    run_dir = created or existing
    if not isinstance(err, Exception) or run_dir is None or not run_dir.is_dir():
        return
    callback = trainer.checkpoint_callback
    saved = [Path(p) for key in ("last_model_path", "best_model_path") if (p := getattr(callback, key, ""))]
    checkpoint = last_good_checkpoint(run_dir, saved)
    if checkpoint is None:
        err.add_note(f"the run folder {run_dir} is kept (no checkpoint had been saved yet)")
    elif str(checkpoint) not in str(err):  # a message that names it already (divergence) says enough
        err.add_note(f"the run folder {run_dir} is kept with its last good checkpoint {checkpoint}")


def claim_folder(parent: Path, prefix: str) -> Path:
    """A new folder ``parent/PREFIX_<date-time>`` (``_2``, ``_3``, ... appended if taken), created here."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        folder = parent / (f"{prefix}_{stamp}" + (f"_{n}" if n > 1 else ""))
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise ConfigError(f"cannot create a new {prefix}_* folder in {parent}")
