"""The TensorBoard logger every run gets, with run folders that concurrent runs cannot share."""

from __future__ import annotations

import os

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


class RunLogger(TensorBoardLogger):
    """TensorBoardLogger that claims ``version_N`` by creating it, so two runs started at the same moment in
    the same ``lightning_logs`` get distinct folders instead of both choosing the next free number. A run
    that fails before writing anything gives its empty folder back."""

    _claimed: str | None = None

    def _get_next_version(self) -> int:
        version = super()._get_next_version()
        if rank_zero_only.rank != 0:  # only rank 0 writes; the others learn the folder from it
            return version
        while True:
            try:
                self._claimed = os.path.join(self.root_dir, f"version_{version}")
                os.makedirs(self._claimed)
                return version
            except FileExistsError:
                version += 1

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if status == "failed" and self._claimed and os.path.isdir(self._claimed) and not os.listdir(self._claimed):
            os.rmdir(self._claimed)
