"""The TensorBoard logger every run gets, with run folders that concurrent runs cannot share."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from lightning_cnn.training.run_folder import LOCK_FILE, claim_version, lock_run, remove_if_untrained


class RunLogger(TensorBoardLogger):
    """TensorBoardLogger that claims ``version_N`` by creating it, so two runs started at the same moment in
    the same ``lightning_logs`` get distinct folders instead of both choosing the next free number, and locks
    it for this process (``run_folder.lock_run``). A run that fails before logging anything (a bad setting
    found in ``setup``) gives its folder back."""

    _claimed: str | None = None

    def _get_next_version(self) -> int:
        version = super()._get_next_version()
        if rank_zero_only.rank != 0:  # only rank 0 writes; the others learn the folder from it
            return version
        version = claim_version(Path(self.root_dir), version)
        self._claimed = os.path.join(self.root_dir, f"version_{version}")
        lock_run(Path(self._claimed))
        return version

    @property
    def experiment(self) -> Any:
        with naming_the_folder(self):
            return super().experiment

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        with naming_the_folder(self):
            super().log_metrics(metrics, step)

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        with naming_the_folder(self):
            super().log_hyperparams(*args, **kwargs)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        try:
            with naming_the_folder(self):
                super().finalize(status)
        except OSError:
            if status != "failed":
                raise  # after a failure, the failure is what the user needs to hear about, not the log's flush
        if status != "failed" or not self._claimed or not os.path.isdir(self._claimed):
            return
        files = [os.path.join(self._claimed, name) for name in os.listdir(self._claimed) if name != LOCK_FILE]
        if all(os.path.basename(f).startswith("events.out.tfevents.") and _only_file_header(f) for f in files):
            remove_if_untrained(Path(self._claimed))


@contextlib.contextmanager
def naming_the_folder(logger: TensorBoardLogger) -> Iterator[None]:
    """TensorBoard writes its events in a thread and raises its file-system errors (a full disk) without the path:
    name the run folder instead."""
    try:
        yield
    except OSError as err:
        if err.filename or not err.strerror:
            raise
        raise OSError(err.errno, err.strerror, logger.log_dir) from err


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
