"""EvaluationReport: what a run shows and keeps besides its curves.

To every logger (see ``lightning_cnn.training.loggers``): a grid of validation predictions every epoch
(``val/predictions``) and the test confusion matrix (``test/confusion_matrix``); in TensorBoard the HPARAMS
session of the run with its real metrics (``val/acc_best``, ``test/acc``, ...), in W&B the final metrics in
the summary. In the run folder after a test: ``metrics.json`` (with the run's name and tags),
``confusion_matrix.png`` and ``reliability.png`` (the reliability diagram of the test confidences, also logged as
``test/reliability``), with ``explain: true`` ``mistakes_explained.png`` (misclassified test images under the Grad-CAM
map of their predicted class, also logged as ``test/mistakes_explained``), sent with ``config.yaml`` to MLflow and
W&B as artifacts; and a per-class table in the log.
With two classes also ``roc.png`` and ``pr.png`` (``lightning_cnn.training.binary_curves``, logged as ``test/roc`` and
``test/pr``), and in ``metrics.json`` the threshold the validation split suggests (``val_threshold``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.tensorboard.summary import hparams

from lightning_cnn.data import ImageDataModule
from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.explain import check_explainable, grad_cam, overlays
from lightning_cnn.internals import flat_hparams, tensorboard_file_writer
from lightning_cnn.training import multilabel_report
from lightning_cnn.training.binary_curves import binary_curves
from lightning_cnn.training.loggers import log_files, log_image, log_summary, run_dir, run_labels, save_png
from lightning_cnn.training.preview import image_grid

METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"
RELIABILITY_FILE = "reliability.png"
EXPLAINED_FILE = "mistakes_explained.png"
SCAN_BATCH = 256  # test images per forward pass while looking for mistakes to explain
ANNOTATE_MAX = 20  # confusion matrices up to this many classes show their counts in the cells
TICKS_MAX = 40  # and up to this many, the class names on the axes


class EvaluationReport(L.Callback):
    """HPARAMS session, validation prediction grids, and the test report (see the module's docstring).

    Args:
        enabled: ``false`` turns the whole report off.
        num_images: the first validation images shown in the per-epoch prediction grid; 0 turns the grid off.
        explain: after a test, also draw the first ``num_images`` misclassified test images with the Grad-CAM map of
            their predicted class over them (``mistakes_explained.png``); the model needs convolutional layers.
    """

    def __init__(self, enabled: bool = True, num_images: int = 32, explain: bool = False) -> None:
        if num_images < 0:
            raise ConfigError(f"report.num_images must be 0 or more, got {num_images}")
        if explain and num_images == 0:
            raise ConfigError("report.explain: true draws report.num_images mistakes; give report.num_images above 0")
        self.enabled = enabled
        self.num_images = num_images
        self.explain = explain
        self._sessions: set[str] = set()  # run folders whose HPARAMS session this process wrote

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """With ``explain``, refuse a model Grad-CAM cannot explain before anything runs."""
        shape = getattr(pl_module, "input_shape", None)
        if self.enabled and self.explain and shape is not None:
            check_explainable(pl_module, shape, "report.explain")

    # --- HPARAMS ------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_session(trainer, pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._write_session(trainer, pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_session(trainer, pl_module)

    def _write_session(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the run's hyperparameters and the names of its metrics as TensorBoard's HPARAMS session, once
        per run folder (a fit that is tested afterwards has declared the test metrics already).

        The values come from the scalars of those names that the run logs, so no placeholder value is
        written (Lightning's ``hp_metric = -1``, or a 0 at step 0 at the start of each curve). Every run
        declares the same list, validation and test metrics, because TensorBoard takes the list of one run
        for all the runs it shows.
        """
        logger = _tensorboard(trainer)
        if not self.enabled or logger is None or not trainer.is_global_zero or logger.log_dir in self._sessions:
            return
        self._sessions.add(logger.log_dir)
        params = {key: value for key, value in flat_hparams(logger.hparams).items() if not key.startswith("_")}
        params = {
            key: value if isinstance(value, (bool, int, float, str)) else str(value) for key, value in params.items()
        }
        seed = _run_seed()
        if seed is not None:
            params["seed"] = seed
        metrics = {name: 0.0 for name in metric_names(pl_module, ("val", "test"))}
        writer = tensorboard_file_writer(logger.experiment)
        for summary in hparams(params, metrics):
            writer.add_summary(summary)
        writer.flush()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        folder = run_dir(trainer) if self.enabled and trainer.is_global_zero and not trainer.fast_dev_run else None
        if folder is not None:  # the saved config (config.yaml, config_resumed_N.yaml) to MLflow and W&B
            log_files(trainer, sorted(folder.glob("config*.yaml")), "config")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        best = getattr(pl_module, "val_acc_best", None)
        if self.enabled and trainer.is_global_zero and best is not None and best.update_called:
            log_summary(trainer, {"val/acc_best": float(best.compute())})

    # --- validation predictions ---------------------------------------------------------------
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled or self.num_images == 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        if not trainer.loggers or not isinstance(datamodule, ImageDataModule) or datamodule.val_set is None:
            return
        if getattr(pl_module, "multi_label", False):  # label sets, not classes
            grid = multilabel_report.validation_grid(trainer, pl_module, datamodule, self.num_images)
        else:
            grid = prediction_grid(trainer, pl_module, datamodule, self.num_images)
        log_image(trainer, "val/predictions", grid.permute(1, 2, 0).numpy(), trainer.global_step)

    # --- test report --------------------------------------------------------------------------
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results: dict[str, Tensor] = getattr(pl_module, "test_results", {})
        if self.enabled and trainer.is_global_zero and "per_label_ap" in results:  # multi-label: its own report
            multilabel_report.write_report(trainer, pl_module, results, self.num_images)
            return
        if not self.enabled or not trainer.is_global_zero or "confusion_matrix" not in results:
            return
        confusion = results["confusion_matrix"]
        classes = class_names(trainer.datamodule, len(confusion))
        scalars = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        report = metrics_report(scalars, results["per_class_acc"], confusion, classes, trainer.ckpt_path)
        name, tags = run_labels(trainer)
        report = {"run_name": name, "tags": tags, **report}
        views = [view.name for view in getattr(pl_module, "tta_views", [])]
        if views:  # test-time augmentation: the views test/tta_* averaged over
            report["tta_views"] = views
        figure = confusion_figure(confusion, classes, scalars.get("test/acc"))
        log_image(trainer, "test/confusion_matrix", figure, trainer.global_step)
        reliability = reliability_figure(results["reliability"], scalars) if "reliability" in results else None
        if reliability is not None:
            log_image(trainer, "test/reliability", reliability, trainer.global_step)
        curves: dict[str, np.ndarray] = {}  # two classes: roc.png, pr.png and the validation split's threshold
        if "scores" in results:
            report["val_threshold"] = getattr(pl_module, "val_threshold", None)
            curves = binary_curves(results["scores"], scalars, report["val_threshold"], f"{classes[1]} (class 1)")
        for key, image in curves.items():
            log_image(trainer, f"test/{key}", image, trainer.global_step)
        explained = None
        if self.explain and isinstance(trainer.datamodule, ImageDataModule) and trainer.datamodule.test_set is not None:
            explained = explained_mistakes(trainer, pl_module, trainer.datamodule, self.num_images)
            if explained is not None:
                log_image(trainer, "test/mistakes_explained", explained, trainer.global_step)
        log_summary(trainer, scalars)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.flush()
        written = ""
        folder = run_dir(trainer) if not trainer.fast_dev_run else None  # a fast dev run leaves no files
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / METRICS_FILE).write_text(json.dumps(report, indent=2) + "\n")
            save_png(figure, folder / CONFUSION_FILE)
            files = [folder / METRICS_FILE, folder / CONFUSION_FILE]
            if reliability is not None:
                save_png(reliability, folder / RELIABILITY_FILE)
                files.append(folder / RELIABILITY_FILE)
            for key, image in curves.items():
                save_png(image, folder / f"{key}.png")
                files.append(folder / f"{key}.png")
            if explained is not None:
                save_png(explained, folder / EXPLAINED_FILE)
                files.append(folder / EXPLAINED_FILE)
            log_files(trainer, files, "report")
            written = f" (written to {folder / METRICS_FILE}, {', '.join(f.name for f in files[1:])})"
        rank_zero_info(f"Test accuracy per class{written}:\n{per_class_table(report)}")
        if views and "test/tta_acc" in scalars:
            rank_zero_info(
                f"Test-time augmentation over {len(views)} views ({', '.join(views)}): test/tta_acc"
                f" {scalars['test/tta_acc']:.4f} (test/acc {scalars.get('test/acc', float('nan')):.4f})"
            )


def _tensorboard(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)), None)


def _run_seed() -> int | None:
    seed = os.environ.get("PL_GLOBAL_SEED")
    return int(seed) if seed is not None and seed.lstrip("-").isdigit() else None


def metric_names(pl_module: L.LightningModule, stages: tuple[str, ...]) -> list[str]:
    """The epoch metrics ``pl_module`` logs in ``stages``: its evaluation metrics, the loss, and ``val/acc_best``."""
    names = []
    for stage in stages:
        collection = getattr(pl_module, f"{stage}_metrics", None)
        names += [*(collection.keys() if collection is not None else [f"{stage}/acc"]), f"{stage}/loss"]
        if stage == "test" and getattr(pl_module, "tta_views", None):
            names += ["test/tta_acc", "test/tta_loss"]
        if stage == "val" and hasattr(pl_module, "val_acc_best"):
            names.insert(0, "val/acc_best")
    return names


def class_names(datamodule: Any, num_classes: int) -> list[str]:
    """The data module's class names, or the class numbers when it has none (or not as many)."""
    classes = list(getattr(datamodule, "classes", None) or [])
    return [str(c) for c in classes] if len(classes) == num_classes else [str(i) for i in range(num_classes)]


@torch.no_grad()
def prediction_grid(
    trainer: L.Trainer, pl_module: L.LightningModule, datamodule: ImageDataModule, num_images: int
) -> Tensor:
    """The first ``num_images`` validation images with their true and predicted classes, mistakes marked.

    The images are taken from the split itself (not a process's share of it) and run through the plain
    module on this process alone, so the grid is the same under DDP and costs one small forward pass.
    """
    assert datamodule.val_set is not None
    images = datamodule.val_set.images[:num_images]
    labels = datamodule.val_set.labels[:num_images]
    inputs, _ = datamodule.prepare_batch((images.to(pl_module.device), labels), train=False)
    was_training = pl_module.training
    pl_module.eval()
    try:
        with trainer.precision_plugin.forward_context():
            logits = pl_module(trainer.precision_plugin.convert_input(inputs))
    finally:
        pl_module.train(was_training)
    predictions = logits.argmax(dim=1).cpu()
    classes = tuple(class_names(datamodule, logits.shape[1]))
    return image_grid(images.float() / 255, labels, classes, predictions)


def explained_mistakes(
    trainer: L.Trainer, pl_module: L.LightningModule, datamodule: ImageDataModule, num_images: int
) -> np.ndarray | None:
    """The first ``num_images`` misclassified test images, each under the Grad-CAM map of its predicted class and
    captioned with its true and predicted class, as an RGB uint8 grid (H, W, 3); None when there is no mistake.

    The test split is read in order, on this process alone, until enough mistakes are found: at most one more
    forward pass over it."""
    assert datamodule.test_set is not None
    images, labels = datamodule.test_set.images, datamodule.test_set.labels
    precision = trainer.precision_plugin
    found: list[Tensor] = []
    predicted: list[Tensor] = []
    for start in range(0, len(images), SCAN_BATCH):
        chunk = slice(start, start + SCAN_BATCH)
        inputs, _ = datamodule.prepare_batch((images[chunk].to(pl_module.device), labels[chunk]), train=False)
        with torch.no_grad(), precision.forward_context():
            predictions = pl_module(precision.convert_input(inputs)).argmax(dim=1).cpu()
        wrong = (predictions != labels[chunk]).nonzero()[:, 0]
        found.append(wrong + start)
        predicted.append(predictions[wrong])
        if sum(len(f) for f in found) >= num_images:
            break
    indices, classes = torch.cat(found)[:num_images], torch.cat(predicted)[:num_images]
    if not len(indices):
        return None
    inputs, _ = datamodule.prepare_batch((images[indices].to(pl_module.device), labels[indices]), train=False)
    with precision.forward_context():
        cam = grad_cam(pl_module, precision.convert_input(inputs), classes, option="report.explain")
    tiles = overlays(inputs, cam.maps, datamodule.mean, datamodule.std)
    names = tuple(class_names(datamodule, cam.logits.shape[1]))
    return image_grid(tiles, labels[indices], names, classes).permute(1, 2, 0).numpy()


def metrics_report(
    scalars: dict[str, float],
    per_class_acc: Tensor,
    confusion: Tensor,
    classes: list[str],
    checkpoint: str | None,
) -> dict[str, Any]:
    """The content of ``metrics.json``: the test metrics, accuracy per class name (``null`` for a class with
    no test image), and the confusion matrix (rows: true class, columns: predicted class)."""
    support = confusion.sum(dim=1)
    return {
        **dict(sorted(scalars.items())),
        "num_images": int(confusion.sum()),
        "checkpoint": checkpoint,
        "per_class_acc": {
            name: (float(acc) if n > 0 else None)
            for name, acc, n in zip(classes, per_class_acc.tolist(), support.tolist(), strict=True)
        },
        "per_class_images": dict(zip(classes, support.tolist(), strict=True)),
        "classes": classes,
        "confusion_matrix": confusion.tolist(),
    }


def per_class_table(report: dict[str, Any]) -> str:
    """Accuracy, number of images and the most frequent wrong prediction of each class, as aligned text."""
    classes: list[str] = report["classes"]
    confusion = np.asarray(report["confusion_matrix"])
    width = max(5, *(len(name) for name in classes))
    lines = [f"  {'class':<{width}}  accuracy   images  most often taken for"]
    for i, name in enumerate(classes):
        acc = report["per_class_acc"][name]
        wrong = confusion[i].copy()
        wrong[i] = 0
        confused = f"{classes[int(wrong.argmax())]} ({int(wrong.max())})" if wrong.max() > 0 else "-"
        shown = f"{100 * acc:7.2f} %" if acc is not None else "      - "
        lines.append(f"  {name:<{width}}  {shown}  {int(confusion[i].sum()):7d}  {confused}")
    return "\n".join(lines)


def confusion_figure(confusion: Tensor, classes: list[str], accuracy: float | None = None) -> np.ndarray:
    """The confusion matrix as an RGB image (H, W, 3) uint8: counts shaded, class names on the axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = confusion.numpy()
    n = len(classes)
    size = min(16.0, max(4.5, 0.5 * n + 2.5))
    figure = Figure(figsize=(size, size), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    shown = axes.imshow(counts, cmap="Blues", interpolation="nearest")
    figure.colorbar(shown, ax=axes, shrink=0.8)
    title = f"Test confusion matrix, {int(counts.sum())} images"
    axes.set_title(title + (f", accuracy {100 * accuracy:.2f} %" if accuracy is not None else ""))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if n <= TICKS_MAX:
        axes.set_xticks(range(n), classes, rotation=45, ha="right", rotation_mode="anchor")
        axes.set_yticks(range(n), classes)
    if n <= ANNOTATE_MAX:
        threshold = counts.max() / 2 if counts.size else 0
        for (row, col), value in np.ndenumerate(counts):
            color = "white" if value > threshold else "black"
            axes.text(col, row, str(int(value)), ha="center", va="center", color=color, fontsize=8)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def reliability_figure(bins: Tensor, scalars: dict[str, float], title: str = "Test reliability") -> np.ndarray:
    """The reliability diagram as an RGB image (H, W, 3) uint8: per confidence bin, the accuracy of its images
    against their mean confidence, the diagonal of perfect calibration, and the share of images per bin.

    ``bins`` is ``ReliabilityBins``' (3, bins) result: images, mean confidence and accuracy per bin. Bars sit on the
    bins' edges, so a bar above the diagonal is a bin whose images are classified better than their confidence says
    (under-confident), one below an over-confident bin."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count, confidence, accuracy = (row.numpy() for row in bins)
    n_bins = len(count)
    edges = np.linspace(0, 1, n_bins + 1)
    seen = count > 0
    figure = Figure(figsize=(5.5, 6.5), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.bar(edges[:-1][seen], accuracy[seen], width=1 / n_bins, align="edge", edgecolor="black", label="accuracy")
    top.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    top.plot(confidence[seen], accuracy[seen], "o", color="tab:red", markersize=4, label="accuracy at mean confidence")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    figures = [
        f"{key.removeprefix('test/').upper()} {scalars[key]:.4f}" for key in ("test/ece", "test/mce") if key in scalars
    ]
    top.set_title(f"{title}, {int(count.sum())} images" + (f", {', '.join(figures)}" if figures else ""))
    top.legend(loc="upper left")
    share = count / max(count.sum(), 1)
    bottom.bar(edges[:-1], share, width=1 / n_bins, align="edge", edgecolor="black", color="tab:gray")
    bottom.set(xlabel="confidence (largest class probability)", ylabel="share of images")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
