"""The command line: a LightningCLI with our defaults, shape links and one-line errors.

``python -m lightning_cnn fit --config configs/mnist/lenet5.yaml`` trains; ``validate``, ``test`` and
``predict`` take the same configs. Every run writes ``lightning_logs/version_N/`` with its
``config.yaml``, TensorBoard events and checkpoints (``--trainer.default_root_dir`` moves it).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_info

from lightning_cnn.checkpoints import (
    checkpoint_model,
    newest_run,
    read_checkpoint,
    run_checkpoint,
    run_of_configs,
    run_version,
    runs_under,
)
from lightning_cnn.data import DATAMODULES, ImageDataModule
from lightning_cnn.data.augment import AUGMENTATIONS
from lightning_cnn.data.mix import MIXES
from lightning_cnn.errors import ConfigError
from lightning_cnn.messages import summarize_parser_error
from lightning_cnn.models import MODELS
from lightning_cnn.models.base import ImageClassifier, check_monitor
from lightning_cnn.models.losses import LOSSES
from lightning_cnn.training.callbacks import RunCheckpoint
from lightning_cnn.training.checkpoint_io import AtomicCheckpointIO
from lightning_cnn.training.loggers import RunLogger
from lightning_cnn.training.preview import AugmentationPreview
from lightning_cnn.training.report import EvaluationReport

# Batches are slices of in-memory tensors, so worker processes only add overhead: silence the advice.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


class ArgumentParser(LightningArgumentParser):
    """A parser whose errors are one line (plus a hint), not jsonargparse's wall of union-type messages."""

    def error(self, message: str, ex: Exception | None = None) -> None:  # type: ignore[override]
        if not getattr(self, "exit_on_error", True):
            super().error(message, ex)
        if os.environ.get("LIGHTNING_CNN_DEBUG"):
            sys.stderr.write(f"{message}\n")
        choices = {
            "model": sorted(MODELS),
            "data": sorted(DATAMODULES),
            "model.loss": sorted(LOSSES),
            "data.mix": sorted(MIXES),
            "data.augment": sorted(AUGMENTATIONS),
        }
        sys.stderr.write(f"error: {summarize_parser_error(message, choices)}\n")
        sys.stderr.write(f"hint: '{self.prog} --help' lists every option\n")
        sys.exit(2)


DEFAULT_MODEL = "lightning_cnn.models.LeNet5"


class CNNLightningCLI(LightningCLI):
    """LightningCLI with the project's defaults: checkpoints of the best ``val/acc`` and the last epoch,
    a learning-rate monitor, the data module's shape linked into the model, and ``test_after_fit``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # any model runs on any dataset: the data module decides the classes and the image shape
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "epoch{epoch:03d}-val_acc{val/acc:.4f}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        # off unless configured: `--early_stopping EarlyStopping --early_stopping.patience 3` or a config
        parser.add_lightning_class_args(EarlyStopping, "early_stopping", subclass_mode=True, required=False)
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})
        # the first augmented training batch, as an image grid in TensorBoard
        parser.add_lightning_class_args(AugmentationPreview, "preview")
        # HPARAMS session, validation prediction grids, confusion matrix and metrics.json of a test
        parser.add_lightning_class_args(EvaluationReport, "report")
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After fit, test the best checkpoint (the last weights if none was saved) on the test split.",
        )
        parser.set_defaults(
            {
                "model": {"class_path": DEFAULT_MODEL},
                "data": {"class_path": "lightning_cnn.data.MNISTDataModule"},
            }
        )

    def _parse_ckpt_path(self) -> None:
        """Before Lightning takes the model from a ``ckpt_path`` file: check that it is a checkpoint, and of the
        model the user chose (an unchosen default model follows the checkpoint, as in Lightning)."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and Path(ckpt_path).is_file():
            check_checkpoint_model(Path(ckpt_path), self.config[subcommand].model.class_path)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        self._resume_version: int | None = None
        if self.subcommand:
            self._resolve_ckpt_path(self.config[self.subcommand])

    def _resolve_ckpt_path(self, config: Any) -> None:
        """``--ckpt_path last`` or ``best`` name a checkpoint of an earlier run: the run whose saved
        ``config.yaml`` was given, else the newest one under ``default_root_dir``. ``fit`` resumed from a
        run's checkpoint goes on in that run's folder."""
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path:
            return
        runs = runs_under(config.trainer.get("default_root_dir") or ".")
        if ckpt_path in ("last", "best"):
            # the run whose config.yaml was given, and no other; without one, the newest run under the root
            run_dir = run_of_configs(config.get("config") or []) or newest_run(runs)
            if run_dir is None:
                raise ConfigError(
                    f"ckpt_path: '{ckpt_path}' found no run with a checkpoint under {runs}; train first, or give"
                    " the run's config.yaml with --config, or the path of a checkpoint file"
                )
            config.ckpt_path = str(run_checkpoint(run_dir, ckpt_path))
        path = Path(config.ckpt_path)
        if not path.is_file():
            raise ConfigError(f"ckpt_path: checkpoint file not found: {config.ckpt_path}")
        check_checkpoint_model(path, (config.get("model") or {}).get("class_path"))
        run_dir = path.resolve().parent.parent
        in_a_run = path.parent.name == "checkpoints" and run_version(run_dir) >= 0
        if self.subcommand == "fit" and in_a_run and run_dir.parent.resolve() == runs.resolve():
            self._resume_version = run_version(run_dir)
            rank_zero_info(f"Resuming {run_dir} from {path.name}")

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The trainer with the configured callbacks (optional ones left out when unset); a resumed run logs into
        its own folder and saves its config as ``config_resumed_N.yaml`` beside the original."""
        parser = self._parser(self.subcommand)
        callbacks = [cb for key in parser.callback_keys if (cb := self._get(self.config_init, key)) is not None]
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        if config.get("logger") in (None, True):
            root = config.get("default_root_dir") or "."
            # no hp_metric placeholder: the EvaluationReport callback declares the run's real metrics
            config["logger"] = RunLogger(
                save_dir=root, version=getattr(self, "_resume_version", None), default_hp_metric=False
            )
            if getattr(self, "_resume_version", None) is not None:
                run_dir = Path(config["logger"].log_dir)
                n = 1 + sum(1 for _ in run_dir.glob("config_resumed_*.yaml"))
                self.save_config_kwargs = {**self.save_config_kwargs, "config_filename": f"config_resumed_{n}.yaml"}
        elif not config.get("logger"):  # `--trainer.logger false`: nothing to log learning rates to
            callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
        plugins = config.get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]
        return self._instantiate_trainer(config, callbacks)

    def before_fit(self) -> None:
        """Fail before any training, and before a resumed run folder is written to, when a callback watches a
        metric that is never logged or the checkpoint to resume from does not fit the model."""
        for key in ("checkpoint", "early_stopping"):
            callback = self._get(self.config_init, key)
            monitor = getattr(callback, "monitor", None)
            if monitor is not None:
                check_monitor(
                    f"{key}.monitor", monitor, getattr(callback, "mode", None), getattr(self.model, "num_classes", None)
                )
        ckpt_path = self.config.fit.get("ckpt_path")
        if ckpt_path:
            check_weights_fit(Path(ckpt_path), self.model)

    def after_fit(self) -> None:
        if not self.config.fit.get("test_after_fit"):
            return
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)


def cli_main(
    args: list[str] | None = None, run: bool = True, callbacks: list[L.Callback] | None = None
) -> CNNLightningCLI:
    """Build (and by default run) the CLI; ``args`` replaces ``sys.argv[1:]``, as tests do. ``callbacks`` join the
    trainer's without entering the saved config: tools (kfold, search) watch their runs through them."""
    return CNNLightningCLI(
        ImageClassifier,
        ImageDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,  # the model's own `optimizer` / `lr_scheduler` arguments decide
        parser_class=ArgumentParser,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": False},
        trainer_defaults={"callbacks": callbacks} if callbacks else None,
    )


def check_config_files(args: list[str]) -> None:
    """Fail early, naming the file, when a ``--config`` file does not exist, is empty or is not valid YAML.

    jsonargparse would otherwise try the value as inline YAML and report "unrecognized arguments", or
    report the YAML problem without the file's name.
    """
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--config" and i + 1 < len(args) else None
        if arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        if value is None or ":" in value:
            continue
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"config file not found: {value} (resolved to {path.resolve()})")
        try:
            content = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"config file {value}: invalid YAML{where}: {getattr(err, 'problem', err)}") from err
        if not isinstance(content, dict):
            kind = "empty" if content is None else f"a {type(content).__name__}, not a mapping of keys to values"
            raise ConfigError(f"config file {value} is {kind}; see configs/ for examples")


def check_checkpoint_model(path: Path, model_class_path: str | None) -> None:
    """A checkpoint of one model given with another explicitly chosen one is an error, not a silent switch."""
    saved = checkpoint_model(path)
    if saved and model_class_path and saved != model_class_path:
        if model_class_path != DEFAULT_MODEL:
            raise ConfigError(
                f"ckpt_path: {path} holds a {saved.rsplit('.', 1)[-1]}, not a {model_class_path.rsplit('.', 1)[-1]};"
                f" give --model {saved.rsplit('.', 1)[-1]} (or the run's own config.yaml with --config)"
            )
        rank_zero_info(f"ckpt_path: {path} holds a {saved}; using that model")


def check_weights_fit(path: Path, model: torch.nn.Module) -> None:
    """A checkpoint whose weights have other names or shapes than ``model``'s fails with one line naming the first."""
    saved = read_checkpoint(path, mmap=True).get("state_dict") or {}
    own = model.state_dict()
    problems = [f"size mismatch for {k}: checkpoint {list(v.shape)}, model {list(own[k].shape)}"
                for k, v in saved.items() if k in own and v.shape != own[k].shape]  # fmt: skip
    problems += [f"missing key {k}" for k in own if k not in saved]
    problems += [f"unexpected key {k}" for k in saved if k not in own]
    if problems:
        raise ConfigError(
            f"ckpt_path: the checkpoint's weights do not fit this model ({problems[0]}; {len(problems)} in all);"
            " was it trained with other model options or on another dataset? Use the run's own config.yaml with"
            " --config"
        )
