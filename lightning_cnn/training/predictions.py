"""``predict``'s results as a CSV in the run folder, like ``predict-files`` writes for image files."""

from __future__ import annotations

import csv
import os
from typing import IO, Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

PREDICTIONS = "predictions.csv"


class PredictionCSV(BasePredictionWriter):
    """Write every prediction to ``predictions.csv`` in the run folder as it is made (nothing is held in memory):
    the image's index in the predicted split, its true class when the split has labels, the predicted class
    and its probability. With several processes each writes its own ``predictions_rank{N}.csv``."""

    def __init__(self) -> None:
        super().__init__(write_interval="batch")
        self._file: IO[str] | None = None
        self.path, self.rows = "", 0

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        name = PREDICTIONS if trainer.world_size == 1 else f"predictions_rank{trainer.global_rank}.csv"
        self.path = os.path.join(trainer.log_dir or ".", name)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._file = open(self.path, "w", newline="")  # noqa: SIM115 (open for the whole prediction)
        self._writer = csv.writer(self._file)
        self._writer.writerow(["index", "label", "class", "probability"])
        self.classes = getattr(trainer.datamodule, "classes", None)
        self.rows = 0

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        probabilities: Tensor = prediction.float().cpu()
        labels = batch[1].tolist() if isinstance(batch, (tuple, list)) and len(batch) == 2 else None
        indices = list(batch_indices) if batch_indices else range(self.rows, self.rows + len(probabilities))
        best = probabilities.max(dim=1)
        for i, (index, value, predicted) in enumerate(zip(indices, best.values, best.indices, strict=True)):
            label = self._name(labels[i]) if labels is not None else ""
            self._writer.writerow([index, label, self._name(int(predicted)), f"{float(value):.6f}"])
        self.rows += len(probabilities)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()
        rank_zero_info(f"predicted {self.rows} images into {self.path}")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _name(self, index: int) -> str:
        return self.classes[index] if self.classes and 0 <= index < len(self.classes) else str(index)
