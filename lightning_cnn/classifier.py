"""ImageClassifier: the one LightningModule every architecture subclasses.

It owns what is common to all classifiers (loss, metrics, logging, optimizer and scheduler wiring), so
an architecture only builds ``self.net`` from the input shape and the number of classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

STAGES = ("train", "val", "test")


class ImageClassifier(LightningModule):
    """Cross-entropy image classifier; subclasses assign ``self.net`` mapping (N, C, H, W) to logits.

    Args:
        num_classes: number of output classes (linked from the data module by the CLI).
        input_shape: (channels, height, width) of one image (linked from the data module by the CLI).
        optimizer: the optimizer class and its arguments, e.g. ``{class_path: torch.optim.SGD,
            init_args: {lr: 0.1, momentum: 0.9}}``; it is called with the model's parameters.
        lr_scheduler: an optional LR scheduler class and its arguments; it is called with the optimizer
            and stepped once per epoch (``ReduceLROnPlateau`` watches ``val/loss``).
    """

    def __init__(
        self,
        num_classes: int = 10,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)
        self._optimizer_factory = optimizer
        self._lr_scheduler_factory = lr_scheduler
        self.net: nn.Module = nn.Identity()
        # lets the model summary show input and output shapes of every layer
        self.example_input_array = torch.zeros(2, *self.input_shape)
        metrics = MetricCollection({"acc": MulticlassAccuracy(num_classes, average="micro")})
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        metrics.update(logits, y)
        # training loss per step (the curve to watch); validation and test loss per epoch, averaged over
        # all processes by sync_dist. The metric objects accumulate over the epoch and sync themselves.
        per_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=per_step, on_epoch=not per_step, prog_bar=True, sync_dist=not per_step)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: tuple[Tensor, Tensor] | Tensor, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(dim=1)

    def configure_optimizers(self):  # noqa: ANN201 - Lightning accepts several return shapes
        optimizer = self._optimizer_factory(self.parameters())
        if self._lr_scheduler_factory is None:
            return optimizer
        scheduler = self._lr_scheduler_factory(optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, ReduceLROnPlateau):
            config["monitor"] = getattr(scheduler, "monitor", "val/loss")
        return {"optimizer": optimizer, "lr_scheduler": config}
