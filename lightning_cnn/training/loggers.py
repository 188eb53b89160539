"""The run's loggers, which share one run folder (``run_folder``).

Every run keeps ``<default_root_dir>/lightning_logs/version_N/`` (``config.yaml``, ``checkpoints/``,
``metrics.json``) whatever it logs to. TensorBoard (the default) and CSV write into that folder; MLflow keeps
its store in ``<default_root_dir>/mlruns`` unless given a ``tracking_uri``, and W&B its files in
``<default_root_dir>/wandb``. The CLI places every ``*RunLogger`` in the same :class:`RunFolder` and gives them
the run's name and tags; the functions at the end send images, files and final metrics to each logger in its
own way, so the report and the preview reach all of them. MLflow and W&B note their run in the run folder's
``tracker_runs.json`` with each checkpoint, so a resumed run goes on in the same tracker run.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from argparse import Namespace
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from lightning_cnn.errors import require
from lightning_cnn.internals import flat_params
from lightning_cnn.run_folder import RUNS_FOLDER, RunFolder, claim_and_lock, give_back, holds_nothing

IMAGES_FOLDER = "images"  # where a CSV-only run keeps its images, inside the run folder
TRACKER_RUNS = "tracker_runs.json"  # in the run folder: the MLflow and W&B runs it logs to, for resuming


class PlacedLogger:
    """A logger the CLI places in the run's folder (:meth:`place`) and tells the run's name and tags."""

    run_folder: RunFolder | None = None
    run_name: str | None = None
    run_tags: list[str] = []

    def place(self, folder: RunFolder, name: str | None, tags: Sequence[str]) -> None:
        self.run_folder, self.run_name, self.run_tags = folder, name, list(tags)

    def _release_on_failure(self, status: str) -> None:
        if status == "failed" and self.run_folder is not None:
            self.run_folder.release_if_unused()

    def _tracker_runs(self) -> dict[str, dict[str, str]]:
        try:
            found = json.loads((self.run_folder.path / TRACKER_RUNS).read_text())
        except (OSError, ValueError):  # none yet, or unreadable: the run starts a new tracker run
            return {}
        return found if isinstance(found, dict) else {}

    def earlier_run(self) -> dict[str, str]:
        """What :meth:`note_run` recorded for this kind of logger when the run folder's earlier part trained
        (empty for a new run): a resumed run goes on in that tracker run."""
        if self.run_folder is None or not self.run_folder.resumed:
            return {}
        found = self._tracker_runs().get(type(self).__name__)
        return found if isinstance(found, dict) else {}

    def note_run(self, **run: str) -> None:
        """Record this logger's tracker run in the run folder (with each checkpoint: what a resume starts from)."""
        if self.run_folder is None or rank_zero_only.rank != 0:
            return
        runs = self._tracker_runs()
        if runs.get(type(self).__name__) == run:
            return
        path = self.run_folder.path / TRACKER_RUNS
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps({**runs, type(self).__name__: run}, indent=1) + "\n")
        os.replace(partial, path)


class RunLogger(PlacedLogger, TensorBoardLogger):
    """TensorBoard, the default: events, the HPARAMS session and images in the run folder.

    On its own (outside the CLI) it claims ``version_N`` by creating it, so two runs started at the same moment
    in the same ``lightning_logs`` get distinct folders. A run that fails before logging anything (a bad
    setting found in ``setup``) gives its folder back.

    Args:
        save_dir: the root of ``lightning_logs``; the CLI uses ``trainer.default_root_dir``.
        log_graph: also log the model's graph.
    """

    _claimed: str | None = None

    def __init__(self, save_dir: str = ".", log_graph: bool = False) -> None:
        self._graph = log_graph
        # no hp_metric placeholder: the EvaluationReport callback declares the run's real metrics
        super().__init__(save_dir=save_dir, name=RUNS_FOLDER, log_graph=log_graph, default_hp_metric=False)

    def place(self, folder: RunFolder, name: str | None, tags: Sequence[str]) -> None:
        super().place(folder, name, tags)
        # TensorBoardLogger reads its location once, in its constructor, and writes nothing before the first log
        TensorBoardLogger.__init__(
            self, folder.runs.parent, name=RUNS_FOLDER, log_graph=self._graph, default_hp_metric=False
        )

    @property
    def version(self) -> int | str:
        return self.run_folder.version if self.run_folder is not None else super().version

    def _get_next_version(self) -> int:
        version = claim_and_lock(Path(self.root_dir), super()._get_next_version())
        self._claimed = os.path.join(self.root_dir, f"version_{version}")
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
        self._release_on_failure(status)
        if status == "failed" and self._claimed:
            give_back(self._claimed)


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


class _SharedFolderWriter(ExperimentWriter):
    """Lightning's CSV writer for a folder it shares (TensorBoard events, ``config.yaml``, checkpoints): no warning
    that the folder is not empty, and a resumed run appends to ``metrics.csv`` instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        fs = get_filesystem(self.log_dir)  # the writer's own, which it keeps privately
        if fs.isfile(self.metrics_file_path):
            with fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


class CSVRunLogger(PlacedLogger, CSVLogger):
    """``metrics.csv`` and ``hparams.yaml`` in the run folder; images as PNG files under its ``images/``.

    Args:
        flush_logs_every_n_steps: how often the metrics are written to ``metrics.csv``.
    """

    def __init__(self, save_dir: str = ".", flush_logs_every_n_steps: int = 100) -> None:
        self._flush_every = flush_logs_every_n_steps
        super().__init__(save_dir=save_dir, name=RUNS_FOLDER, flush_logs_every_n_steps=flush_logs_every_n_steps)

    def place(self, folder: RunFolder, name: str | None, tags: Sequence[str]) -> None:
        super().place(folder, name, tags)
        # CSVLogger reads its location once, in its constructor, and writes nothing before the first log
        CSVLogger.__init__(self, folder.runs.parent, name=RUNS_FOLDER, flush_logs_every_n_steps=self._flush_every)

    @property
    def version(self) -> int | str:
        return self.run_folder.version if self.run_folder is not None else super().version

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._experiment = _SharedFolderWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if status == "failed" and self.run_folder is not None and holds_nothing(self.run_folder.path):
            self._release_on_failure(status)  # CSVLogger's finalize would write an hparams.yaml into it
            return
        super().finalize(status)


class MLflowRunLogger(PlacedLogger, MLFlowLogger):
    """MLflow: hyper-parameters as params, curves and final metrics as metrics, the report's files and images as
    artifacts, the run's name and tags as the MLflow run name and tags.

    Args:
        experiment_name: the MLflow experiment the run joins.
        tracking_uri: the tracking server or store; by default a local file store, ``file:<root>/mlruns``.
        log_model: also upload checkpoints as artifacts (``true``: at the end, ``all``: each one).
    """

    def __init__(self, experiment_name: str = "lightning_cnn", tracking_uri: str | None = None,
                 log_model: bool | str = False) -> None:  # fmt: skip
        require("mlflow", "the MLflow logger")
        # MLFlowLogger's constructor opens the store; that waits for `place`, which knows where the run's root is
        Logger.__init__(self)
        self._args = {"experiment_name": experiment_name, "log_model": log_model}
        self._given_uri = tracking_uri

    def place(self, folder: RunFolder, name: str | None, tags: Sequence[str]) -> None:
        super().place(folder, name, tags)
        self._uri_before = os.environ.get("MLFLOW_TRACKING_URI")
        uri = self._given_uri or self._uri_before
        if not uri:
            uri = f"file:{folder.runs.parent / 'mlruns'}"
            # MLflow 3 asks for a database store unless told a local file store is wanted, as it is here: one
            # folder beside lightning_logs that needs no server or database (give tracking_uri for one)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        labels = {"tags": ", ".join(tags), **{tag: "true" for tag in tags}} if tags else None
        run_id = self._earlier_run_id(uri)
        self._uri, self._continues = uri, run_id is not None
        MLFlowLogger.__init__(self, **self._args, tracking_uri=uri, run_name=name, tags=labels, run_id=run_id)

    def _earlier_run_id(self, uri: str) -> str | None:
        """The MLflow run of the run folder's earlier part, when this run resumes it with the same store and the
        run is still there."""
        earlier = self.earlier_run()
        if not earlier.get("run_id") or earlier.get("tracking_uri") != uri:
            return None
        from mlflow.tracking import MlflowClient

        try:
            deleted = MlflowClient(uri).get_run(earlier["run_id"]).info.lifecycle_stage == "deleted"
        except Exception:  # gone from the store, or a store that cannot be read: a new run reports the latter
            deleted = True
        if deleted:
            rank_zero_info(f"MLflow run {earlier['run_id']} is no longer in {uri}: the resumed run starts a new one")
            return None
        return earlier["run_id"]

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        super().after_save_checkpoint(checkpoint_callback)
        self.note_run(tracking_uri=self._uri, run_id=self.run_id)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        """As MLFlowLogger, except in a run that goes on: MLflow params cannot change, so the resumed part adds
        only new ones and says which keep the first part's value."""
        if getattr(self, "_continues", False):
            logged = self.experiment.get_run(self.run_id).data.params
            params = flat_params(params)
            changed = sorted(k for k, v in params.items() if k in logged and logged[k] != str(v)[:250])
            if changed:
                rank_zero_info(
                    f"MLflow run {self.run_id} keeps its first values of {', '.join(changed)} (MLflow params cannot"
                    " change); the resumed run's values are in its config_resumed_N.yaml"
                )
            params = {k: v for k, v in params.items() if k not in logged}
        super().log_hyperparams(params)

    @property
    def save_dir(self) -> str | None:
        """The run folder (``trainer.log_dir`` when this logger is the first), not the MLflow store."""
        return str(self.run_folder.path) if self.run_folder is not None else super().save_dir

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._initialized:  # a run that never logged has no MLflow run to close
            super().finalize(status)
        # MLflow exports the store it opened as MLFLOW_TRACKING_URI; put back what was there, so that a later run in
        # this process (a notebook, a benchmark) chooses its own store instead of following this one
        if hasattr(self, "_uri_before"):  # set by `place`, before this logger opened any store
            if self._uri_before is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = self._uri_before
        self._release_on_failure(status)


class WandbRunLogger(PlacedLogger, WandbLogger):
    """Weights & Biases: hyper-parameters as config, curves, final metrics in the summary, images, and the
    report's files as an artifact. ``offline: true`` (or ``WANDB_MODE=offline``) writes the run to
    ``<root>/wandb`` for a later ``wandb sync``.

    Args:
        project: the W&B project.
        offline: keep the run on disk instead of sending it.
        log_model: upload checkpoints as artifacts (online only).
    """

    def __init__(self, project: str = "lightning_cnn", offline: bool = False, log_model: bool | str = False) -> None:
        require("wandb", "the W&B logger")
        self._args = {"project": project, "offline": offline, "log_model": log_model}
        super().__init__(**self._args)

    def place(self, folder: RunFolder, name: str | None, tags: Sequence[str]) -> None:
        super().place(folder, name, tags)
        root = folder.runs.parent
        root.mkdir(parents=True, exist_ok=True)  # wandb writes <dir>/wandb and needs <dir> to exist
        # the W&B run of the run folder's earlier part goes on (WandbLogger passes resume="allow")
        earlier = self.earlier_run()
        run_id = earlier.get("id") if earlier.get("project") == self._args["project"] else None
        # WandbLogger reads all of these once, in its constructor, and starts nothing before the first log
        WandbLogger.__init__(self, **self._args, name=name, save_dir=str(root), tags=list(tags) or None, id=run_id)

    @property
    def save_dir(self) -> str | None:
        """The run folder (``trainer.log_dir`` when this logger is the first), not W&B's own folder."""
        return str(self.run_folder.path) if self.run_folder is not None else super().save_dir

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        super().after_save_checkpoint(checkpoint_callback)
        self.note_run(project=self._args["project"], id=self.experiment.id)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            super().finalize(status)
        self._release_on_failure(status)
        self._failed = status == "failed"

    @rank_zero_only
    def finish(self) -> None:
        """End the W&B run once the subcommand is over (a fit is finalized before its test logs), so the next run
        in this process starts its own."""
        if self._experiment is not None:
            self._experiment.finish(exit_code=1 if getattr(self, "_failed", False) else 0)
            self._experiment = None


def finish_runs(loggers: Sequence[Logger]) -> None:
    """End the runs of loggers that keep one open across a subcommand's stages (W&B)."""
    for logger in loggers:
        if isinstance(logger, WandbRunLogger):
            logger.finish()


# the optional package behind each logger class that needs one (ours and Lightning's own)
PACKAGES = {"MLflowRunLogger": "mlflow", "MLFlowLogger": "mlflow", "WandbRunLogger": "wandb", "WandbLogger": "wandb"}


def check_logger_packages(class_paths: Sequence[str]) -> None:
    """Before any logger is built: one line with the pip command for a logger whose package is missing
    (built by the argument parser, the logger's own error would be lost in a message about union types)."""
    for class_path in class_paths:
        name = class_path.rsplit(".", 1)[-1]
        if name in PACKAGES:
            require(PACKAGES[name], f"trainer.logger {name}")


# --- the report and the preview, sent to every logger in its own way ----------------------------------
def run_dir(trainer: L.Trainer) -> Path | None:
    """The run folder of a trainer's loggers: the shared one, else the first logger's folder; ``None`` without
    loggers. Read on rank 0 only (``trainer.log_dir`` would broadcast)."""
    if not trainer.loggers:
        return None
    placed = next((lg for lg in trainer.loggers if getattr(lg, "run_folder", None) is not None), None)
    if placed is not None:
        return placed.run_folder.path
    first = trainer.loggers[0]
    return Path(getattr(first, "log_dir", None) or first.save_dir or ".")


def run_labels(trainer: L.Trainer) -> tuple[str | None, list[str]]:
    """The run's name and tags, as the CLI gave them to its loggers."""
    placed = next((lg for lg in trainer.loggers if isinstance(lg, PlacedLogger)), None)
    return (placed.run_name, list(placed.run_tags)) if placed is not None else (None, [])


def log_image(trainer: L.Trainer, key: str, image: np.ndarray, step: int) -> None:
    """An RGB uint8 image (H, W, 3) to every logger: TensorBoard and W&B images, an MLflow artifact, a PNG under
    the run folder's ``images/`` for a CSV logger (once, whatever the number of CSV loggers)."""
    wrote_png = False
    for logger in trainer.loggers:
        file_name = f"{key.replace('/', '_')}_step{step:06d}.png"
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, step, dataformats="HWC")
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_image(logger.run_id, image, artifact_file=f"{key}/{file_name}")
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], step=step)
        elif isinstance(logger, CSVLogger) and not wrote_png:
            folder = Path(logger.log_dir) / IMAGES_FOLDER
            folder.mkdir(parents=True, exist_ok=True)
            save_png(image, folder / file_name)
            wrote_png = True


def log_files(trainer: L.Trainer, paths: Sequence[Path], name: str) -> None:
    """Files of the run folder to the loggers that keep artifacts: MLflow artifacts, a W&B artifact ``name``.
    TensorBoard and CSV need nothing: the files are in the run folder already."""
    paths = [p for p in paths if p.is_file()]
    if not paths:
        return
    for logger in trainer.loggers:
        if isinstance(logger, MLFlowLogger):
            for path in paths:
                logger.experiment.log_artifact(logger.run_id, str(path))
        elif isinstance(logger, WandbLogger):
            import wandb

            run = logger.experiment
            artifact = wandb.Artifact(f"{name}-{run.id}", type=name)
            for path in paths:
                artifact.add_file(str(path))
            run.log_artifact(artifact)


def log_summary(trainer: L.Trainer, metrics: dict[str, float]) -> None:
    """Final metrics where a logger shows them beside the hyper-parameters: W&B's summary; the others have them
    as the last value of their curves (MLflow, CSV) or in the HPARAMS session (TensorBoard)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(metrics)


def log_run_info(trainer: L.Trainer, name: str | None, tags: Sequence[str]) -> None:
    """The run's name and tags among every logger's hyper-parameters, and as text in TensorBoard (MLflow and W&B
    also have them as their own run name and tags)."""
    if name is None and not tags:
        return
    for logger in trainer.loggers:
        if not isinstance(logger, Logger) or type(logger).__name__ == "DummyLogger":
            continue
        logger.log_hyperparams({"run_name": name or "", "tags": ", ".join(tags)})
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text("run", f"name: {name or '-'}  \ntags: {', '.join(tags) or '-'}", 0)


def save_png(image: np.ndarray, path: Path) -> None:
    """An RGB uint8 image (H, W, 3) as a PNG file: a CSV logger's images and the report's confusion matrix."""
    from PIL import Image

    Image.fromarray(image).save(path, format="PNG")
