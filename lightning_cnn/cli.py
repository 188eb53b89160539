"""The command line of ``fit``, ``validate``, ``test`` and ``predict``: a LightningCLI that declares our options,
links and defaults, and hands each step of a command to the module that does it.

``python -m lightning_cnn fit --config configs/mnist/lenet5.yaml`` trains. A command flows through:
parse (``config_files``, ``preflight``) → the checkpoint it works with (``training.checkpoint_resolution``) →
model, data and Trainer (``training.trainer_setup``, in the run folder of ``run_folder``) → the run →
on failure, what the run folder keeps. Every run writes ``lightning_logs/version_N/`` with its ``config.yaml``,
logs and checkpoints (``--trainer.default_root_dir`` moves it).
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_cnn import preflight
from lightning_cnn.config_files import absolute_data_paths, option_given, own_labels
from lightning_cnn.data import DATAMODULES, ImageDataModule
from lightning_cnn.data.augment import AUGMENTATIONS
from lightning_cnn.data.exclusion import read_exclusion
from lightning_cnn.data.mix import MIXES
from lightning_cnn.data.tta import tta_views
from lightning_cnn.errors import ConfigError, summarize_parser_error, user_error
from lightning_cnn.internals import int_before_float, subcommand_parsers
from lightning_cnn.models import MODELS
from lightning_cnn.models.base import ImageClassifier
from lightning_cnn.models.losses import LOSSES
from lightning_cnn.run_folder import RunFolder
from lightning_cnn.training import console  # noqa: F401 (its filters keep Lightning's noise off the output)
from lightning_cnn.training.callbacks import RunCheckpoint, skip_unused_batch_hooks
from lightning_cnn.training.checkpoint_resolution import (
    DEFAULT_MODEL,
    check_checkpoint_model,
    check_weights_fit,
    resolve_ckpt_path,
    run_test_after_fit,
)
from lightning_cnn.training.preview import AugmentationPreview
from lightning_cnn.training.report import EvaluationReport
from lightning_cnn.training.trainer_setup import check_logger_config, run_guard, saved_config_name, trainer_arguments

int_before_float()  # "--trainer.limit_train_batches 10" is ten batches whatever else was imported first


class ArgumentParser(LightningArgumentParser):
    """A parser whose errors are one line (plus a hint), not jsonargparse's wall of union-type messages, and that
    never takes an option from an abbreviation (``--trainer.max_ep`` is a typo, not ``max_epochs``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

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


DEFAULTS = {
    # checkpoints of the best val/acc and of the last epoch
    "checkpoint.monitor": "val/acc",
    "checkpoint.mode": "max",
    "checkpoint.save_last": True,
    "checkpoint.filename": "epoch{epoch:03d}-val_acc{val/acc:.4f}",
    "checkpoint.auto_insert_metric_name": False,
    "lr_monitor.logging_interval": "step",
    # a list: logger fragments (`logger+:`) add theirs to TensorBoard; --trainer.logger X replaces it
    "trainer.logger": [{"class_path": "lightning_cnn.training.loggers.RunLogger"}],
    "model": {"class_path": DEFAULT_MODEL},
    "data": {"class_path": "lightning_cnn.data.MNISTDataModule"},
}

# The options of a run besides the model's, the data's and the Trainer's: name, (type, default, help).
RUN_OPTIONS: dict[str, tuple[Any, Any, str]] = {
    "run_name": (str | None, None, "A name for the run, shown by every logger, in metrics.json and by"
                 " 'lightning-cnn runs'."),
    "tags": (list[str], [], "Tags of the run, e.g. [baseline, augment], shown like the name."),
    "progress": (Literal["auto", "bar", "lines", "rich"], "auto", "How training shows progress: a bar, one line per"
                 " epoch ('lines'), or Rich's bar; 'auto' is the bar on a terminal and lines when the output goes to"
                 " a file or a pipe."),
    "progress_interval": (float, 30.0, "With lines: at most one line every this many seconds inside an epoch"
                          " (besides one per epoch)."),
    "test_after_fit": (bool, False, "After fit, test a checkpoint of the run (see test_ckpt) on the test split."),
    "test_ckpt": (Literal["auto", "best", "last"], "auto", "The checkpoint test_after_fit tests: 'best' (best"
                  " val/acc), 'last' (the last epoch), or 'auto': 'last' when the learning rate was annealed (ended"
                  " below 1/100 of its start), else 'best'."),
    "tta": (bool, False, "Test also with test-time augmentation: the softmax averaged over the mirror image and"
            " shifts of each test image, as far as data.augment flips (HorizontalFlip) and crops (RandomCrop); logs"
            " test/tta_acc and test/tta_loss beside test/acc. For test, and fit with test_after_fit."),
    "exclude": (str | None, None, "An audit.csv that 'lightning-cnn audit' wrote: train without its first --top"
                " rows (the likeliest label errors), dropped from the training split."),
    "top": (int | None, None, "With exclude: how many of the audit's suspects to leave out."),
    "trust_checkpoint": (bool, False, "Load a --ckpt_path file that holds more than weights and plain data."
                         " Unpickling such a file can run code written into it: only for a file you trust."),
}  # fmt: skip


class CNNLightningCLI(LightningCLI):
    """LightningCLI with the project's defaults: checkpoints of the best ``val/acc`` and the last epoch,
    a learning-rate monitor, the data module's shape linked into the model, and ``test_after_fit``."""

    def __init__(self, *args: Any, run: bool = True, **kwargs: Any) -> None:
        self._with_subcommands = run  # read by add_arguments_to_parser, which LightningCLI's __init__ calls
        super().__init__(*args, run=run, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        if not self._with_subcommands:
            # a run's saved config.yaml holds fit's own options too (ckpt_path, weights_only): the tools build runs
            # from it without the fit subcommand
            parser.add_method_arguments(L.Trainer, "fit", skip={"model", "train_dataloaders", "val_dataloaders",
                                                                  "datamodule"})  # fmt: skip
        # any model runs on any dataset: the data module decides the classes and the image shape
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")
        parser.link_arguments("data.multi_label", "model.init_args.multi_label", apply_on="instantiate")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        # off unless configured: `--early_stopping EarlyStopping --early_stopping.patience 3` or a config
        parser.add_lightning_class_args(EarlyStopping, "early_stopping", subclass_mode=True, required=False)
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        # the first augmented training batch, as an image grid in TensorBoard
        parser.add_lightning_class_args(AugmentationPreview, "preview")
        # HPARAMS session, validation prediction grids, confusion matrix and metrics.json of a test
        parser.add_lightning_class_args(EvaluationReport, "report")
        for name, (kind, default, text) in RUN_OPTIONS.items():
            parser.add_argument(f"--{name}", type=kind, default=default, help=text)
        parser.set_defaults(DEFAULTS)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then check what the parser cannot (ranges, finite numbers) before the seed is set or anything is
        built."""
        given = list(sys.argv[1:] if args is None else args) if isinstance(args, list) or args is None else []
        if given:
            self._preflight(preflight.check_config_sections, given, subcommand_parsers(self), self.parser)
        # a root on the command line is where the user wants this command's output, also for a trained run's files
        self._root_given = option_given(given, "trainer.default_root_dir")
        super().parse_arguments(parser, args)
        config = self._config()
        preflight.integral_counts(config.get("trainer"))
        if self.config.get("subcommand") in ("fit", None):
            own_labels(config, given)
        self._preflight(preflight.check_config, config)

    def _parse_ckpt_path(self) -> None:
        """Before Lightning takes the model from a ``ckpt_path`` file: check that it is a checkpoint, and of the
        model the user chose (an unchosen default model follows the checkpoint, as in Lightning)."""
        config, subcommand = self._config(), self.config.get("subcommand")
        trust = bool(subcommand and config.get("trust_checkpoint"))
        if subcommand and config.get("ckpt_path") and Path(config.ckpt_path).is_file():
            check_checkpoint_model(Path(config.ckpt_path), config.model.class_path, trust)
        try:
            super()._parse_ckpt_path()  # Lightning reads the checkpoint's hyper-parameters weights-only
        except pickle.UnpicklingError:
            if not trust:
                raise  # not reached: the check above refused the file already
            # a trusted file that holds objects: its model comes from the config, as for a file without hparams

    def _config(self) -> Any:
        """The parsed options of the subcommand (of the whole command line when run without one)."""
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def before_instantiate_classes(self) -> None:
        self._run_version: int | None = None  # of the existing run folder the subcommand works in
        if self.subcommand:
            config = self._config()
            preflight.check_accelerator(config.get("trainer") or {})
            check_logger_config(config.get("trainer") or {})
            self._run_version = resolve_ckpt_path(self.subcommand, config, self._root_given)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as err:
            # a value a class did not check itself (torch refusing a negative padding): name the key and the class
            found = user_error(err) or preflight.construction_error(self._config(), err)
            if type(found) is ConfigError:  # a configuration mistake: one line and exit 2, as the parser's
                self.parser.error(str(found))
            if found is None:
                raise
            raise found from err
        checkpoint = self._get(self.config_init, "checkpoint")
        self._preflight(preflight.check_built, self._config(), self.subcommand, self.model, self.datamodule,
                        self.trainer, checkpoint)  # fmt: skip
        self._preflight(self._use_tta)
        self._preflight(self._use_exclude)
        absolute_data_paths(self._config().get("data"), self.datamodule)

    def _use_tta(self) -> None:
        """With ``tta`` on a command that tests, give the model the views its data's augmentation implies (refused
        before anything runs when there are none)."""
        config = self._config()
        testing = self.subcommand == "test" or (self.subcommand == "fit" and config.get("test_after_fit"))
        if config.get("tta") and testing and hasattr(self.model, "use_tta"):
            self.model.use_tta(tta_views(getattr(self.datamodule, "augment", None), "this run (data.augment)"))

    def _use_exclude(self) -> None:
        """With ``exclude`` and ``top``, give the data module the audit's first ``top`` suspects to leave out of its
        training split (checked against the training labels when the split is drawn)."""
        config = self._config()
        path, top = config.get("exclude"), config.get("top")
        if top is not None and path is None:
            raise ConfigError("--top needs --exclude AUDIT_CSV (the audit.csv that 'lightning-cnn audit' wrote)")
        if path is None:
            return
        if top is None or top < 0:
            raise ConfigError(f"--exclude needs --top N, 0 or more suspects to leave out (got {top})")
        if isinstance(self.datamodule, ImageDataModule):
            self.datamodule.excluded = read_exclusion(path, top)

    def _preflight(self, check: Any, *args: Any) -> None:
        """Run a pre-flight check; its failure is a usage error like the parser's: one line, exit 2."""
        try:
            check(*args)
        except ConfigError as err:
            self.parser.error(str(err))

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The trainer with the configured callbacks (optional ones left out when unset), its loggers placed in one
        run folder; a command that goes on in an existing run saves its config beside the run's own."""
        callbacks = [cb for key in self._parser(self.subcommand).callback_keys
                     if (cb := self._get(self.config_init, key)) is not None]  # fmt: skip
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        self._run_folder = RunFolder(config.get("default_root_dir") or ".", getattr(self, "_run_version", None))
        if saved := saved_config_name(self._run_folder, self.subcommand):
            self.save_config_kwargs = {**self.save_config_kwargs, "config_filename": saved}
        labels = self._get(self.config, "run_name"), self._get(self.config, "tags", default=[]) or []
        progress = self._get(self.config, "progress", "auto"), self._get(self.config, "progress_interval", 30.0)
        config, callbacks = trainer_arguments(config, callbacks, self._run_folder, self.subcommand, labels, progress,
                                              saved)  # fmt: skip
        trainer = self._instantiate_trainer(config, callbacks)
        skip_unused_batch_hooks(trainer.callbacks)
        return trainer

    def _run_subcommand(self, subcommand: str) -> None:
        with run_guard(self._run_folder, self.trainer):
            super()._run_subcommand(subcommand)

    def before_fit(self) -> None:
        """Fail before any training, and before a resumed run folder is written to, when a callback watches a
        metric that is never logged or the checkpoint to resume from does not fit the model."""
        watching = {key: self._get(self.config_init, key) for key in ("checkpoint", "early_stopping")}
        preflight.check_monitors(watching, getattr(self.model, "num_classes", None))
        self._check_weights_fit()

    def _check_weights_fit(self) -> None:
        """Fail before anything runs or is written when the checkpoint's weights do not fit the configured model."""
        config = self._config()
        if config.get("ckpt_path"):
            check_weights_fit(Path(config.ckpt_path), self.model, bool(config.get("trust_checkpoint")))

    before_validate = before_test = before_predict = _check_weights_fit

    def after_fit(self) -> None:
        if self.config.fit.get("test_after_fit"):
            which = self.config.fit.get("test_ckpt") or "auto"
            run_test_after_fit(self.trainer, self.model, self.datamodule, which)


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
