"""The TensorBoard logger every run gets, with run folders that concurrent runs cannot share."""

from __future__ import annotations

import os
import struct
from pathlib import Path

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

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if status != "failed" or not self._claimed or not os.path.isdir(self._claimed):
            return
        files = [os.path.join(self._claimed, name) for name in os.listdir(self._claimed) if name != LOCK_FILE]
        if all(os.path.basename(f).startswith("events.out.tfevents.") and _only_file_header(f) for f in files):
            remove_if_untrained(Path(self._claimed))


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
