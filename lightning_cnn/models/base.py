"""ImageClassifier: the one LightningModule every architecture subclasses.

It owns what is common to all classifiers (loss, metrics, logging, optimizer and scheduler wiring,
regularization, per-epoch seeding), so an architecture only builds ``self.net`` from the input shape
and the number of classes.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from lightning_cnn.data.tta import View, average_probabilities, black
from lightning_cnn.errors import ConfigError, DivergedError, check_file
from lightning_cnn.internals import NormBase
from lightning_cnn.models import multilabel
from lightning_cnn.models.binary import PositiveScores, ranking_metrics, two_class_logits, youden_threshold
from lightning_cnn.models.calibration import ReliabilityBins, calibration_metrics
from lightning_cnn.models.losses import ClassificationLoss, CrossEntropyLoss, balanced_weights
from lightning_cnn.registry import Registry
from lightning_cnn.schedulers import build_scheduler, default_interval, scheduler_class

# Metrics every classifier logs, with the direction in which they improve (for monitors and their mode).
METRICS = {
    "train/loss": "min",
    "train/acc": "max",
    "val/loss": "min",
    "val/acc": "max",
    "val/acc_top5": "max",  # only with more than 5 classes
    "val/f1": "max",
    "val/acc_best": "max",
    "val/map": "max",  # multi-label data only (see models/multilabel.py), as the two below
    "val/f1_micro": "max",
    "val/hamming_acc": "max",
}
TOP_K = 5
NORM_LAYERS = (NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def check_monitor(key: str, metric: str, mode: str | None = None, num_classes: int | None = None) -> None:
    """Fail before training when ``metric`` is never logged, or ``mode`` runs against its direction."""
    if metric not in METRICS:
        raise ConfigError(f"{key}: '{metric}' is never logged; choose one of {', '.join(METRICS)}")
    if metric.endswith(f"_top{TOP_K}") and num_classes is not None and num_classes <= TOP_K:
        raise ConfigError(f"{key}: '{metric}' is logged only with more than {TOP_K} classes, not {num_classes}")
    if mode is not None and mode != METRICS[metric]:
        raise ConfigError(f"{key}: '{metric}' improves in mode '{METRICS[metric]}', not '{mode}'")


class SharedFactory:
    """An optimizer or scheduler factory the CLI built, kept as is when the model is deep-copied (the averaged model
    of weight averaging): it can hold the CLI's own state, with locks under DDP, and a copy never builds an
    optimizer. Calls and attributes go to the factory."""

    def __init__(self, factory: Callable[..., Any]) -> None:
        self.__wrapped__ = factory  # inspect.signature and the attributes read below see the factory itself

    @classmethod
    def of(cls, factory: Any) -> Any:
        """``factory`` wrapped; None, a class (deep-copied as itself) and a wrapped one as they are."""
        return factory if factory is None or isinstance(factory, (type, cls)) else cls(factory)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["__wrapped__"], name)

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedFactory:
        return self


class ImageClassifier(LightningModule):
    """Image classifier; subclasses assign ``self.net`` mapping (N, C, H, W) to logits.

    Training minimizes ``loss`` (cross-entropy unless configured) with the class weights and label smoothing
    below, on class indices or on the soft targets of a mixed batch (``data.mix``); ``val/loss`` and
    ``test/loss`` stay plain cross-entropy, so runs with different losses compare.

    Args:
        num_classes: number of output classes (linked from the data module by the CLI).
        input_shape: (channels, height, width) of one image (linked from the data module by the CLI).
        optimizer: the optimizer class and its arguments, e.g. ``{class_path: torch.optim.SGD,
            init_args: {lr: 0.1, momentum: 0.9}}``; it is called with the model's parameter groups.
        lr_scheduler: an optional LR scheduler class and its arguments, called with the optimizer.
            ``total_steps`` (one-cycle, warmup-cosine) is filled in from the trainer.
        lr_scheduler_interval: ``step`` or ``epoch``; default ``step`` for warmup-cosine, one-cycle and
            cyclic schedules, ``epoch`` for the others.
        lr_scheduler_monitor: the metric a ``ReduceLROnPlateau`` watches (its ``mode`` must match).
        decay_norm_and_bias: ``false`` exempts biases and normalization weights from weight decay.
        label_smoothing: label smoothing of the training targets, in [0, 1).
        loss: the training loss, e.g. ``{class_path: FocalLoss, init_args: {gamma: 2.0}}``; default cross-entropy
            (see ``lightning_cnn.models.losses``). ``BCEWithLogitsLoss`` (two classes only) trains one logit.
        class_weights: a weight per class for the training loss (rare classes count more): a list of
            ``num_classes`` numbers, or ``balanced`` for inverse class frequency in the training split.
        l1_weight: weight of an L1 penalty on the conv and linear weights (0 turns it off).
        compile: compile the network with ``torch.compile`` (checkpoints keep the plain parameter names).
        channels_last: keep the network's 4-D weights and the input batches in the channels-last memory
            layout, which convolutions run faster in on recent GPUs (tensor cores) under mixed precision; the
            checkpoint's weights load into a model without it.
        multi_label: one logit per label for images with a set of labels (linked from the data module by the CLI, see
            ``lightning_cnn.models.multilabel``): binary cross-entropy per label, ``val/map`` and tuned thresholds.
    """

    def __init__(
        self,
        num_classes: int = 10,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] | None = None,
        lr_scheduler_monitor: str = "val/loss",
        decay_norm_and_bias: bool = True,
        label_smoothing: float = 0.0,
        l1_weight: float = 0.0,
        compile: bool = False,
        channels_last: bool = False,
        loss: ClassificationLoss | None = None,
        class_weights: list[float] | Literal["balanced"] | None = None,
        multi_label: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= label_smoothing < 1:
            raise ConfigError(f"model.label_smoothing must be in [0, 1), got {label_smoothing}")
        if l1_weight < 0:
            raise ConfigError(f"model.l1_weight must be 0 or more, got {l1_weight}")
        check_monitor("model.lr_scheduler_monitor", lr_scheduler_monitor, num_classes=num_classes)
        check_class_weights(class_weights, num_classes)
        if isinstance(scheduler_class(lr_scheduler), type) and issubclass(
            scheduler_class(lr_scheduler), ReduceLROnPlateau
        ):
            args = getattr(lr_scheduler, "keywords", None) or {}
            if "monitor" in args:  # lightning.pytorch.cli.ReduceLROnPlateau carries its own monitor
                check_monitor("model.lr_scheduler.monitor", args["monitor"], args.get("mode", "min"))
            else:
                check_monitor("model.lr_scheduler_monitor", lr_scheduler_monitor, args.get("mode", "min"))
        self.save_hyperparameters()
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)
        self._optimizer_factory = SharedFactory.of(optimizer)
        self._lr_scheduler_factory = SharedFactory.of(lr_scheduler)
        self.lr_scheduler_interval = lr_scheduler_interval
        self.lr_scheduler_monitor = lr_scheduler_monitor
        self.decay_norm_and_bias = decay_norm_and_bias
        self.label_smoothing = label_smoothing
        self.l1_weight = l1_weight
        self.compile_net = compile
        self.channels_last = channels_last
        self.loss = loss if loss is not None else CrossEntropyLoss()
        self.multi_label = multi_label
        if multi_label or getattr(self.loss, "multi_label", False):  # one logit per label, or refused in one line
            self.loss = multilabel.multi_label_loss(loss, multi_label, class_weights)
        if self.loss.single_logit and num_classes != 2:
            raise ConfigError(
                f"model.loss: {type(self.loss).__name__} trains one logit for two classes, but the data has"
                f" {num_classes}; use CrossEntropyLoss or FocalLoss, or data with two class folders"
            )
        # the width of the network's output, which architectures build their last layer with: one logit for a
        # single-logit loss (forward turns it into two-class logits), else one per class
        self.num_outputs = 1 if self.loss.single_logit else num_classes
        self.class_weights = class_weights
        # not in the state_dict: training-only. "balanced" is computed from the data at the start of fit; until then
        # equal weights, so that copies of the model made before (the EMA callback's) hold the same buffers
        if class_weights is None:
            given = None
        elif class_weights == "balanced":
            given = torch.ones(num_classes)
        else:
            given = torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weight", given, persistent=False)
        self.net: nn.Module = nn.Identity()
        self._loss_window: list[Tensor] = []  # the training losses since train/loss was last logged
        # lets the model summary show input and output shapes of every layer, and FLOPs per image as
        # `lightning-cnn models` gives them (the summary runs it in evaluation mode)
        self.example_input_array = torch.zeros(1, *self.input_shape)
        # training: top-1 only, counted with two tensor ops per step (a torchmetrics update costs ten times
        # more, see benchmarks/overhead.py) and summed over processes once per epoch; evaluation: top-1,
        # top-5 and macro F1; the test split also the calibration errors of the confidences (test/ece, test/mce)
        self._train_correct: Tensor | None = None  # correctly classified training images this epoch
        self._train_seen = 0  # training images this epoch
        evaluation: dict[str, Any] = {"acc": MulticlassAccuracy(num_classes, average="micro")}
        if num_classes > TOP_K:
            evaluation["acc_top5"] = MulticlassAccuracy(num_classes, top_k=TOP_K, average="micro")
        evaluation["f1"] = MulticlassF1Score(num_classes, average="macro")
        # no compute groups: torchmetrics shares the states of metrics whose states were equal after the first
        # batch, and top-5 accuracy and macro F1 can be (both per class), which silently gave F1 top-5's value
        self.val_metrics = MetricCollection(evaluation, prefix="val/", compute_groups=False)
        self.test_metrics = self.val_metrics.clone(prefix="test/")
        self.test_metrics.add_metrics(calibration_metrics(num_classes))
        self.test_metrics.add_metrics(ranking_metrics(num_classes))  # two classes: test/auroc, test/auprc
        # two classes: the validation split's class-1 scores, and the threshold they suggest (kept in checkpoints)
        self.val_scores = PositiveScores() if num_classes == 2 else None
        self.val_threshold: float | None = None
        # the evaluation loss as a torchmetrics mean weighted by batch size: Lightning's `self.log(...,
        # sync_dist=True)` floors the image count when processes saw different numbers of images
        # (Lightning-AI/pytorch-lightning#21859), which the unpadded evaluation sampler makes the rule
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        # the best val/acc so far; kept in checkpoints (see on_save_checkpoint), so a resumed run keeps it
        self.val_acc_best = MaxMetric()
        # tables of the test split: accuracy per class, counts of (true class, predicted class), and the
        # reliability bins (images, confidence, accuracy per confidence bin) the report's diagram shows
        self.test_tables = MetricCollection(
            {
                "per_class_acc": MulticlassAccuracy(num_classes, average=None),
                "confusion_matrix": MulticlassConfusionMatrix(num_classes),
                "reliability": ReliabilityBins(),
            },
            compute_groups=False,
        )
        if num_classes == 2:  # the report's ROC and precision-recall curves
            self.test_tables.add_metrics({"scores": PositiveScores()})
        if multi_label:  # ranking and thresholded metrics instead, and each label's threshold (tuned on validation)
            self.val_metrics = multilabel.evaluation_metrics(num_classes, "val/")
            self.test_metrics = multilabel.evaluation_metrics(num_classes, "test/")
            self.test_tables = multilabel.test_tables(num_classes)
            self.val_scores = None
            self.label_scores = multilabel.LabelScores()
            self.register_buffer("label_thresholds", torch.full((num_classes,), multilabel.DEFAULT_THRESHOLD))
        self.test_results: dict[str, Tensor] = {}  # test_tables computed at the end of the last test epoch
        # test-time augmentation (``use_tta``): the views a test also averages the softmax over; none: off
        self.tta_views: list[View] = []

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Lightning's loader; called on ``ImageClassifier`` itself, it builds the architecture that the checkpoint
        records (Lightning would build the bare base class, which has none of the saved weights)."""
        if cls is ImageClassifier and isinstance(checkpoint_path, (str, os.PathLike)):
            from lightning_cnn.checkpoints import checkpoint_model, class_of

            path = Path(checkpoint_path)
            check_file(path, "checkpoint file")
            trust = kwargs.get("weights_only") is False  # Lightning's own flag: False loads what the file holds
            concrete = class_of(checkpoint_model(path, trust), ImageClassifier, "model", path)
            return concrete.load_from_checkpoint(checkpoint_path, *args, **kwargs)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.net(x)
        if self.num_outputs == 1:
            if logits.shape[1] != 1:
                raise ConfigError(
                    f"model.loss: {type(self.loss).__name__} trains one logit, but {type(self).__name__}'s network"
                    f" emits {logits.shape[1]}; build its last layer with self.num_outputs, or use CrossEntropyLoss"
                )
            return two_class_logits(logits)
        return logits

    def configure_model(self) -> None:
        if self.channels_last:  # in place; 4-D weights only, the others have no such layout
            self.net.to(memory_format=torch.channels_last)
        # nn.Module.compile compiles in place: state_dict keys stay free of `_orig_mod.` prefixes
        if self.compile_net:
            self.net.compile()

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        if self.multi_label:
            return multilabel.model_step(self, batch, stage)
        x, y = batch
        logits = self(x)
        if stage == "train":
            loss = self.loss(logits, y, self.class_weight, self.label_smoothing)
            y = y.argmax(dim=1) if y.ndim == 2 else y  # a mixed batch's accuracy counts its dominant labels
            correct = (logits.detach().argmax(dim=1) == y).sum()
            self._train_correct = correct if self._train_correct is None else self._train_correct + correct
            self._train_seen += len(y)
        else:
            loss = F.cross_entropy(logits, y)
            # probabilities, not logits: the calibration errors take logits that all lie in [0, 1] for probabilities
            probabilities = logits.detach().float().softmax(dim=1)
            getattr(self, f"{stage}_metrics").update(probabilities, y)
            if stage == "val" and self.val_scores is not None:
                self.val_scores.update(probabilities, y)
        if stage != "train":  # per epoch, averaged over all images of all processes
            getattr(self, f"{stage}_loss").update(loss.detach(), weight=len(y))
        if stage == "test":
            self.test_tables.update(probabilities, y)
            if self.tta_views:
                self._update_tta(x, y, logits.detach())
        return loss

    def use_tta(self, views: list[View]) -> None:
        """Test also with test-time augmentation over ``views`` (``lightning_cnn.data.tta``): ``test/tta_acc`` and
        ``test/tta_loss`` (the cross-entropy of the averaged probabilities) beside the plain test metrics."""
        if self.multi_label:
            raise ConfigError("tta: test-time augmentation averages the softmax of one class; not for multi-label data")
        self.tta_views = list(views)
        self.test_tta_acc = MulticlassAccuracy(self.num_classes, average="micro").to(self.device)
        self.test_tta_loss = MeanMetric().to(self.device)

    def _update_tta(self, x: Tensor, y: Tensor, logits: Tensor) -> None:
        """Count a test batch's test-time augmentation figures; shifted pixels are filled with the data's black."""
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        stats = (getattr(datamodule, "mean", None), getattr(datamodule, "std", None))
        fill = black(*stats) if None not in stats else None  # type: ignore[arg-type]
        probabilities = average_probabilities(self, x, self.tta_views, fill, logits)
        self.test_tta_acc.update(probabilities, y)
        loss = F.nll_loss(probabilities.clamp_min(torch.finfo(torch.float32).tiny).log(), y)
        self.test_tta_loss.update(loss.detach(), weight=len(y))

    def _log_train_loss(self, loss: Tensor, batch_idx: int) -> None:
        """Log ``train/loss`` as the mean over the steps since it was last logged, on the steps the logger
        writes (every ``trainer.log_every_n_steps``) and on an epoch's last batch; stop if any was not finite.

        Every step's loss counts in the curve (Lightning writes only every n-th step's value), and the
        per-step cost of ``self.log`` (and of a device sync for the finiteness check) stays off the hot path
        (see benchmarks/overhead.py)."""
        self._loss_window.append(loss.detach())
        if self._trainer is None:  # called outside a Trainer (a plain loop, a test): nothing to log to
            return
        every = max(self.trainer.log_every_n_steps, 1)
        last = batch_idx + 1 >= self.trainer.num_training_batches
        if (self.trainer.global_step + 1) % every == 0 or last or self.trainer.fast_dev_run:
            losses = self._check_finite_losses()
            self._loss_window = []
            self.log("train/loss", losses.mean(), on_step=True, on_epoch=False, prog_bar=True)

    def _check_finite_losses(self) -> Tensor:
        """The training losses since train/loss was last logged; raise ``DivergedError`` naming the first step
        whose loss was NaN or infinite, before anything saves the weights that followed it."""
        losses = torch.stack(self._loss_window)
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0])
            step = self.trainer.global_step - (len(losses) - 1) + first
            lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else float("nan")
            checkpoint = self.trainer.checkpoint_callback
            kept = getattr(checkpoint, "last_model_path", "") or getattr(checkpoint, "best_model_path", "")
            raise DivergedError(
                f"train/loss became {losses[first].item()} at epoch {self.current_epoch}, step {step}"
                f" (learning rate {lr:.3g}); training stopped"
                + (f", the last good checkpoint is {kept}" if kept else ", no checkpoint had been saved yet")
                + ". Lower the learning rate, add warmup, or clip gradients (--trainer.gradient_clip_val 1.0)"
            )
        return losses

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # a checkpoint written between two loss checks (mid-epoch validation, every_n_train_steps) must not
        # hold the weights of a diverged step
        if self._trainer is not None and self.trainer.training and self._loss_window:
            self._check_finite_losses()
        # beside the weights, not in the state_dict: checkpoints of earlier versions still load strictly
        checkpoint["val_acc_best"] = self.val_acc_best.max_value.detach().cpu().clone()
        if self.val_scores is not None:
            checkpoint["val_threshold"] = self.val_threshold

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "val_acc_best" in checkpoint:
            state = self.val_acc_best.max_value
            self.val_acc_best.max_value = torch.as_tensor(checkpoint["val_acc_best"]).to(state.device, state.dtype)
        if self.val_scores is not None:
            self.val_threshold = checkpoint.get("val_threshold")

    def _log_epoch_metrics(self, stage: str) -> None:
        """Log the epoch's accumulated metrics (synced across processes by ``compute``) and reset them.

        Logging the computed values once per epoch instead of the metric objects every step keeps
        Lightning's per-step bookkeeping off the training loop's hot path (see benchmarks/overhead.py).
        """
        if stage == "train":
            self._log_train_accuracy()
            return
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        if not any(metric.update_called for metric in metrics.values()):
            return  # no batches this epoch (e.g. limit_val_batches: 0)
        values = metrics.compute()
        metrics.reset()
        accuracy = values.pop(f"{stage}/acc")
        loss: MeanMetric = getattr(self, f"{stage}_loss")
        self.log(f"{stage}/loss", loss.compute(), prog_bar=True)
        loss.reset()
        self.log(f"{stage}/acc", accuracy, prog_bar=True)
        self.log_dict(values)
        if stage == "val" and not self.trainer.sanity_checking:  # the sanity check's few batches do not count
            self.val_acc_best.update(accuracy)
            self.log("val/acc_best", self.val_acc_best.compute())
        if stage == "val" and self.val_scores is not None and self.val_scores.update_called:
            if not self.trainer.sanity_checking:  # the threshold of these weights, on the whole validation split
                self.val_threshold = youden_threshold(*self.val_scores.compute())
            self.val_scores.reset()
        if stage == "val" and self.multi_label:
            multilabel.tune_thresholds(self)
        if stage == "test":
            self.test_results = {name: value.detach().cpu() for name, value in self.test_tables.compute().items()}
            self.test_tables.reset()
            if self.tta_views and self.test_tta_acc.update_called:
                self.log("test/tta_loss", self.test_tta_loss.compute())
                self.log("test/tta_acc", self.test_tta_acc.compute())
                self.test_tta_loss.reset()
                self.test_tta_acc.reset()

    def _log_train_accuracy(self) -> None:
        """Log ``train/acc``: the epoch's correctly classified training images over all of them, summed over
        every process, and start counting again."""
        if self._train_correct is None:
            return  # no training batches this epoch
        counts = torch.stack([self._train_correct, torch.tensor(self._train_seen, device=self._train_correct.device)])
        correct, seen = self.trainer.strategy.reduce(counts.double(), reduce_op="sum")
        self._train_correct, self._train_seen = None, 0
        self.log("train/acc", (correct / seen).float(), prog_bar=True)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        self._log_train_loss(loss, batch_idx)
        if self.l1_weight:
            penalty = sum(p.abs().sum() for p in self._weights(decayed=True))
            self.log("train/l1_penalty", penalty, on_step=True, on_epoch=False)
            loss = loss + self.l1_weight * penalty
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def predict_step(self, batch: tuple[Tensor, Tensor] | Tensor, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).sigmoid() if self.multi_label else self(x).softmax(dim=1)

    def on_fit_start(self) -> None:
        """``class_weights: balanced``: inverse class frequency of the data module's training split."""
        if self.class_weights != "balanced":
            return
        counts = getattr(self.trainer.datamodule, "train_class_counts", None)
        if counts is None:
            raise ConfigError(
                "model.class_weights: balanced needs the training labels; fit with a data module of lightning_cnn.data"
                " (or give the weights as a list)"
            )
        self.class_weight.copy_(balanced_weights(counts()))

    def on_train_epoch_start(self) -> None:
        """Restart the ``train/loss`` window, and reseed every random number generator from (seed, epoch)
        when the run has a seed.

        Dropout and augmentation then depend on the epoch alone, so a run resumed from an epoch's
        checkpoint continues exactly as the uninterrupted run would, while each epoch still differs.
        """
        self._loss_window = []
        self._train_correct, self._train_seen = None, 0
        seed = os.environ.get("PL_GLOBAL_SEED")
        if seed is not None:
            epoch_seed = (int(seed) * 1_000_003 + self.current_epoch) % 2**32
            random.seed(epoch_seed)
            np.random.seed(epoch_seed)
            torch.manual_seed(epoch_seed)

    def _weights(self, decayed: bool) -> list[nn.Parameter]:
        """Trainable parameters that weight decay (and the L1 penalty) apply to, or the others."""
        chosen = []
        for module in self.net.modules():
            for name, param in module.named_parameters(recurse=False):
                exempt = isinstance(module, NORM_LAYERS) or name.endswith("bias")
                if param.requires_grad and exempt != decayed:
                    chosen.append(param)
        return chosen

    def parameter_groups(self) -> list[dict[str, Any]]:
        """All trainable parameters; with ``decay_norm_and_bias: false`` biases and norms get no weight decay."""
        if self.decay_norm_and_bias:
            return [{"params": [p for p in self.parameters() if p.requires_grad]}]
        return [{"params": self._weights(decayed=True)}, {"params": self._weights(decayed=False), "weight_decay": 0.0}]

    def configure_optimizers(self) -> Any:
        optimizer = self._optimizer_factory(self.parameter_groups())
        if self._lr_scheduler_factory is None:
            return optimizer
        scheduler = build_scheduler(self._lr_scheduler_factory, optimizer, int(self.trainer.estimated_stepping_batches))
        config: dict[str, Any] = {"scheduler": scheduler, "interval": self.lr_scheduler_interval}
        config["interval"] = config["interval"] or getattr(scheduler, "interval", default_interval(scheduler))
        if isinstance(scheduler, ReduceLROnPlateau):
            # steps when validation ran; skipped (not an error) in epochs without validation
            config.update(monitor=getattr(scheduler, "monitor", self.lr_scheduler_monitor), strict=False)
            config["frequency"] = self.trainer.check_val_every_n_epoch or 1
        return {"optimizer": optimizer, "lr_scheduler": config}


def check_class_weights(class_weights: list[float] | str | None, num_classes: int) -> None:
    """A list of class weights has one non-negative number per class, not all zero."""
    if class_weights is None or class_weights == "balanced":
        return
    if isinstance(class_weights, str):
        raise ConfigError(f"model.class_weights must be a list of numbers or 'balanced', got '{class_weights}'")
    if len(class_weights) != num_classes:
        raise ConfigError(
            f"model.class_weights has {len(class_weights)} values but the data has {num_classes} classes;"
            f" give {num_classes} weights or 'balanced'"
        )
    if any(not w >= 0 for w in class_weights) or not any(w > 0 for w in class_weights):
        raise ConfigError(f"model.class_weights must be 0 or more and not all 0, got {class_weights}")


# Every architecture, registered where it is defined with ``@MODELS.register``.
MODELS: Registry[type[ImageClassifier]] = Registry("models")
