"""The command line: a LightningCLI with our defaults, shape links and one-line errors.

``python -m lightning_cnn fit --config configs/mnist/lenet5.yaml`` trains; ``validate``, ``test`` and
``predict`` take the same configs. Every run writes ``lightning_logs/version_N/`` with its
``config.yaml``, TensorBoard events and checkpoints (``--trainer.default_root_dir`` moves it).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, WeightAveraging
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from lightning_cnn import preflight
from lightning_cnn.checkpoints import (
    checkpoint_model,
    newest_run,
    read_checkpoint,
    resolve_checkpoint,
    run_checkpoint,
    run_of_configs,
    run_version,
    runs_under,
)
from lightning_cnn.config_files import check_sections, config_paths, option_given, read_yaml, with_packaged_configs
from lightning_cnn.data import DATAMODULES, ImageDataModule
from lightning_cnn.data.augment import AUGMENTATIONS
from lightning_cnn.data.mix import MIXES
from lightning_cnn.errors import ConfigError, check_file, user_error
from lightning_cnn.internals import int_before_float
from lightning_cnn.messages import summarize_parser_error
from lightning_cnn.models import MODELS
from lightning_cnn.models.base import ImageClassifier, check_monitor
from lightning_cnn.models.losses import LOSSES
from lightning_cnn.training.callbacks import (
    LogEveryEpoch,
    RunCheckpoint,
    RunLabels,
    ScheduleResumeNote,
    skip_unused_batch_hooks,
)
from lightning_cnn.training.checkpoint_io import AtomicCheckpointIO
from lightning_cnn.training.loggers import PlacedLogger, RunFolder, RunLogger, check_logger_packages, finish_runs
from lightning_cnn.training.predictions import PredictionCSV
from lightning_cnn.training.preview import AugmentationPreview
from lightning_cnn.training.progress import progress_callback
from lightning_cnn.training.report import EvaluationReport
from lightning_cnn.training.run_folder import (
    last_good_checkpoint,
    lock_run,
    release_runs,
    remove_if_untrained,
    set_aside_damaged_last,
)

int_before_float()  # "--trainer.limit_train_batches 10" is ten batches whatever else was imported first

# Batches are slices of in-memory tensors, so worker processes only add overhead: silence the advice.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# a training set of fewer batches than log_every_n_steps logs every epoch's worth of steps instead (LogEveryEpoch)
warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
# Lightning's own code calling a deprecated torch API: nothing a user can act on
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


class LightningNoise(logging.Filter):
    """Drops Lightning's lines that ask nothing of the user (which accelerators exist, an advert for a logging
    service, that a run stopped after its last epoch, which the last epoch's own line shows) from every command's
    output; its warnings that ask the user to act are kept."""

    NOISE = re.compile(
        r"^(GPU available: |TPU available: |HPU available: |💡 Tip: |`Trainer\.fit` stopped: `max_epochs)"
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.NOISE.search(record.getMessage())


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(LightningNoise())


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


DEFAULT_MODEL = "lightning_cnn.models.LeNet5"


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
            "--run_name", type=str | None, default=None,
            help="A name for the run, shown by every logger, in metrics.json and by 'lightning-cnn runs'.",
        )  # fmt: skip
        parser.add_argument(
            "--tags", type=list[str], default=[], help="Tags of the run, e.g. [baseline, augment], shown like the name."
        )
        parser.add_argument(
            "--progress",
            type=Literal["auto", "bar", "lines", "rich"],
            default="auto",
            help="How training shows progress: a bar, one line per epoch ('lines'), or Rich's bar; 'auto' is the"
            " bar on a terminal and lines when the output goes to a file or a pipe.",
        )
        parser.add_argument(
            "--progress_interval",
            type=float,
            default=30.0,
            help="With lines: at most one line every this many seconds inside an epoch (besides one per epoch).",
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After fit, test a checkpoint of the run (see test_ckpt) on the test split.",
        )
        parser.add_argument(
            "--test_ckpt",
            type=Literal["auto", "best", "last"],
            default="auto",
            help="The checkpoint test_after_fit tests: 'best' (best val/acc), 'last' (the last epoch), or 'auto':"
            " 'last' when the learning rate was annealed (ended below 1/100 of its start), else 'best'.",
        )
        parser.add_argument(
            "--trust_checkpoint",
            type=bool,
            default=False,
            help="Load a --ckpt_path file that holds more than weights and plain data. Unpickling such a file can run"
            " code written into it: only for a file you trust.",
        )
        parser.set_defaults(
            {
                # a list: logger fragments (`logger+:`) add theirs to TensorBoard; --trainer.logger X replaces it
                "trainer.logger": [{"class_path": "lightning_cnn.training.loggers.RunLogger"}],
                "model": {"class_path": DEFAULT_MODEL},
                "data": {"class_path": "lightning_cnn.data.MNISTDataModule"},
            }
        )

    def _parse_ckpt_path(self) -> None:
        """Before Lightning takes the model from a ``ckpt_path`` file: check that it is a checkpoint, and of the
        model the user chose (an unchosen default model follows the checkpoint, as in Lightning)."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        trust = bool(subcommand and self.config[subcommand].get("trust_checkpoint"))
        if ckpt_path and Path(ckpt_path).is_file():
            check_checkpoint_model(Path(ckpt_path), self.config[subcommand].model.class_path, trust)
        try:
            super()._parse_ckpt_path()  # Lightning reads the checkpoint's hyper-parameters weights-only
        except pickle.UnpicklingError:
            if not trust:
                raise  # not reached: the check above refused the file already
            # a trusted file that holds objects: its model comes from the config, as for a file without hparams

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then check what the parser cannot (ranges, finite numbers) before the seed is set or anything is
        built."""
        given = list(sys.argv[1:] if args is None else args) if isinstance(args, list) or args is None else []
        if given:
            self._preflight(self._check_config_sections, given)
        # a root on the command line is where the user wants this command's output, also for a trained run's files
        self._root_given = option_given(given, "trainer.default_root_dir")
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        preflight.integral_counts(config.get("trainer"))
        if subcommand in ("fit", None):
            own_labels(config, given)
        self._preflight(preflight.check_config, config)

    def _check_config_sections(self, args: list[str]) -> None:
        """Sections of the ``--config`` files given to the subcommand are mappings, never silently dropped."""
        parsers = getattr(self, "_subcommand_parsers", {})
        subcommand = next((a for a in args if a in parsers), None)
        parser = parsers[subcommand] if subcommand else self.parser
        for value in config_paths(args[args.index(subcommand) + 1 :] if subcommand else args):
            content = read_yaml(Path(value)) if Path(value).is_file() else None
            if isinstance(content, dict):
                # model, data, early_stopping take a class name; the other sections are groups of options
                classes = [a.dest for a in parser._actions if a.dest in parser.groups and hasattr(a, "_typehint")]
                check_sections(content, list(parser.groups), classes, value)

    def before_instantiate_classes(self) -> None:
        self._run_version: int | None = None  # of the existing run folder the subcommand works in
        if self.subcommand:
            config = self.config[self.subcommand]
            check_accelerator(config.get("trainer") or {})
            loggers = config.trainer.get("logger")
            loggers = loggers if isinstance(loggers, list) else [loggers]
            check_logger_packages([str(lg.get("class_path")) for lg in loggers if hasattr(lg, "get")])
            self._resolve_ckpt_path(config)

    def _resolve_ckpt_path(self, config: Any) -> None:
        """``--ckpt_path last`` or ``best`` name a checkpoint of an earlier run: the run whose saved
        ``config.yaml`` was given, else the newest one under ``default_root_dir``; a run folder names its
        ``last.ckpt`` for ``fit`` and for the others the file every tool takes. A checkpoint of that run, or of a
        run under ``default_root_dir``, keeps the command in the run's own folder, wherever the folder now lies:
        ``fit`` resumes there, ``validate``, ``test`` and ``predict`` write their reports there."""
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path:
            if self.subcommand in ("validate", "test", "predict"):
                raise ConfigError(
                    f"{self.subcommand} needs --ckpt_path: a checkpoint file, a run folder's 'best' or 'last' (with"
                    " the run's config.yaml given by --config), since a model that was not trained (even one with"
                    " pretrained weights, whose classifier is new) has nothing to evaluate"
                )
            return
        config.weights_only = not config.get("trust_checkpoint")  # how Lightning loads it: weights-only unless trusted
        runs = runs_under(config.trainer.get("default_root_dir") or ".")
        given_run = run_of_configs(config.get("config") or [])
        if ckpt_path in ("last", "best"):
            # the run whose config.yaml was given, and no other; without one, the newest run under the root
            run_dir = given_run or newest_run(runs)
            if run_dir is None:
                raise ConfigError(
                    f"ckpt_path: '{ckpt_path}' found no run with a checkpoint under {runs}; train first, or give"
                    " the run's config.yaml with --config, or the path of a checkpoint file"
                )
            config.ckpt_path = str(run_checkpoint(run_dir, ckpt_path))
        elif Path(ckpt_path).is_dir():
            folder = Path(ckpt_path)
            run = folder.parent if folder.name == "checkpoints" else folder
            fit = self.subcommand == "fit"
            config.ckpt_path = str(run_checkpoint(run, "last") if fit else resolve_checkpoint(folder))
        path = Path(config.ckpt_path)
        if not path.is_file():
            raise ConfigError(f"ckpt_path: checkpoint file not found: {config.ckpt_path}")
        check_checkpoint_model(path, (config.get("model") or {}).get("class_path"), config.get("trust_checkpoint"))
        run_dir = path.resolve().parent.parent
        if path.parent.name != "checkpoints" or run_version(run_dir) < 0:
            return  # a checkpoint file outside a run folder: a new run starts from its weights
        if given_run is not None and given_run.resolve() == run_dir and not self._root_given:
            # the saved default_root_dir is where the run was trained; a copied or moved run goes on where it is
            config.trainer.default_root_dir = str(run_dir.parent.parent)
        elif run_dir.parent != runs.resolve():
            return  # a checkpoint of a run under another root: a new run here starts from its weights
        if self.subcommand == "fit":
            # a resumed run's checkpoint folder holds its earlier checkpoints by design
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            lock_run(run_dir)  # before anything is written: a second process resuming this run stops here
            set_aside_damaged_last(run_dir, path)
            rank_zero_info(f"Resuming {run_dir} from {path.name}")
            note_changed_options(run_dir, config)
        self._run_version = run_version(run_dir)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as err:
            # a value a class did not check itself (torch refusing a negative padding): name the key and the class
            found = user_error(err) or preflight.construction_error(self._subcommand_config(), err)
            if type(found) is ConfigError:  # a configuration mistake: one line and exit 2, as the parser's
                self.parser.error(str(found))
            if found is None:
                raise
            raise found from err
        if self.datamodule is not None and self.model is not None:
            self._preflight(preflight.check_linked, self._subcommand_config(), self.model, self.datamodule)
        absolute_data_paths(self._subcommand_config().get("data"), self.datamodule)
        training = self.subcommand in (None, "fit")  # None: built to be checked, as the tools do before their runs
        checkpoints = {"checkpoint": self._get(self.config_init, "checkpoint")} if training else {}
        model = self.model if training else None
        self._preflight(preflight.check_objects, model, self.trainer, self.datamodule, checkpoints)

    def _subcommand_config(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def _preflight(self, check: Any, *args: Any) -> None:
        """Run a pre-flight check; its failure is a usage error like the parser's: one line, exit 2."""
        try:
            check(*args)
        except ConfigError as err:
            self.parser.error(str(err))

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The trainer with the configured callbacks (optional ones left out when unset), its loggers placed in one
        run folder, and the progress display. Every run has its own ``version_N`` folder, with or without a
        logger; a resumed run goes on in its own folder and saves its config as ``config_resumed_N.yaml``."""
        parser = self._parser(self.subcommand)
        callbacks = [cb for key in parser.callback_keys if (cb := self._get(self.config_init, key)) is not None]
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        root = config.get("default_root_dir") or "."
        logger = config.get("logger")
        if logger is None or logger is True:  # TensorBoard, the default
            loggers = [RunLogger(save_dir=root)]
        elif logger is False:
            loggers = []
        else:
            loggers = one_of_each(list(logger) if isinstance(logger, (list, tuple)) else [logger])
        resume = getattr(self, "_run_version", None)
        self._run_folder = folder = RunFolder(root, resume)
        self._existing_run = None if resume is None else folder.path
        labels = self._get(self.config, "run_name"), self._get(self.config, "tags", default=[]) or []
        for each in loggers:
            if isinstance(each, PlacedLogger):
                each.place(folder, *labels)
        if any(isinstance(each, PlacedLogger) for each in loggers):
            for callback in callbacks:
                if isinstance(callback, RunCheckpoint):
                    callback.run_folder = folder
        if not loggers:  # `--trainer.logger false`: nothing to log learning rates to, but a run folder all the same
            callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
            if not config.get("fast_dev_run"):
                # the other processes write nothing: Lightning broadcasts rank 0's folders
                mine = resume is not None or rank_zero_only.rank == 0
                config["default_root_dir"] = str(folder.path if mine else folder.runs)
        config["logger"] = loggers or False
        if self.subcommand == "predict":
            callbacks.append(PredictionCSV())
        if self._existing_run is not None:  # the run's config.yaml stays; this command's config goes beside it
            kind = "resumed" if self.subcommand == "fit" else self.subcommand
            n = 1 + sum(1 for _ in self._existing_run.glob(f"config_{kind}_*.yaml"))
            self.save_config_kwargs = {**self.save_config_kwargs, "config_filename": f"config_{kind}_{n}.yaml"}
            if self.subcommand == "fit":
                callbacks.append(ScheduleResumeNote(self._existing_run / f"config_{kind}_{n}.yaml"))
        callbacks += [RunLabels(), LogEveryEpoch()]
        progress = progress_callback(
            self._get(self.config, "progress", default="auto"),
            self._get(self.config, "progress_interval", default=30.0),
            enabled=config.get("enable_progress_bar") is not False,
            configured=[*callbacks, *(config.get("callbacks") or [])],
        )
        if progress is not None:
            callbacks.append(progress)
        plugins = config.get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]
        trainer = self._instantiate_trainer(config, callbacks)
        skip_unused_batch_hooks(trainer.callbacks)
        return trainer

    def _run_subcommand(self, subcommand: str) -> None:
        """Run the subcommand holding its run folder; a failure removes the folder it created when nothing was
        trained yet, else adds to the error which folder and checkpoint were kept."""
        try:
            super()._run_subcommand(subcommand)
        except BaseException as err:
            if self.trainer.is_global_zero:
                self._after_failure(err)
            if type(err) is SystemExit and self.trainer.interrupted:
                # Lightning ends a run stopped by Ctrl-C with exit(1) after its graceful shutdown: report the
                # interruption as such (one line, exit 130), as for a Ctrl-C outside the training loop
                raise KeyboardInterrupt from err
            raise
        finally:
            finish_runs(self.trainer.loggers)
            release_runs()

    def _after_failure(self, err: BaseException) -> None:
        folder = self._run_folder
        created = folder.path if folder.claimed else None
        if created is None and self.trainer.global_step == 0:
            return  # stopped before it trained or made a folder: the run it names is as it was
        if created and self.trainer.global_step == 0 and remove_if_untrained(created):
            return
        run_dir = created or self._existing_run
        if not isinstance(err, Exception) or run_dir is None or not run_dir.is_dir():
            return
        callback = self.trainer.checkpoint_callback
        saved = [Path(p) for key in ("last_model_path", "best_model_path") if (p := getattr(callback, key, ""))]
        checkpoint = last_good_checkpoint(run_dir, saved)
        if checkpoint is None:
            err.add_note(f"the run folder {run_dir} is kept (no checkpoint had been saved yet)")
        elif str(checkpoint) not in str(err):  # a message that names it already (divergence) says enough
            err.add_note(f"the run folder {run_dir} is kept with its last good checkpoint {checkpoint}")

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
        self._check_weights_fit()

    def _check_weights_fit(self) -> None:
        """Fail before anything runs or is written when the checkpoint's weights do not fit the configured model."""
        config = self._subcommand_config()
        if config.get("ckpt_path"):
            check_weights_fit(Path(config.ckpt_path), self.model, bool(config.get("trust_checkpoint")))

    before_validate = before_test = before_predict = _check_weights_fit

    def after_fit(self) -> None:
        if not self.config.fit.get("test_after_fit"):
            return
        which = self.config.fit.get("test_ckpt") or "auto"
        if which == "auto":
            which = "last" if lr_annealed(self.trainer) else "best"
        checkpoint = self.trainer.checkpoint_callback
        path = ""
        if isinstance(checkpoint, ModelCheckpoint):
            path = checkpoint.best_model_path if which == "best" else checkpoint.last_model_path
        # without a saved checkpoint (checkpointing off), the weights in memory: those of the last step
        rank_zero_info(f"test_after_fit: testing the {which} checkpoint {path or '(the weights in memory)'}")
        # a weight-averaging callback (EMA) that trained this run would load the checkpoint's raw weights over its
        # averaged ones, which the checkpoint holds as its weights and a separate `test` uses: leave it out here
        callbacks = self.trainer.callbacks
        self.trainer.callbacks = [cb for cb in callbacks if not isinstance(cb, WeightAveraging)]
        try:
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=path or None)
        finally:
            self.trainer.callbacks = callbacks


def own_labels(config: Any, given: Sequence[str]) -> None:
    """A new run started from another run's saved ``config.yaml`` (a k-fold fold, a search trial, a re-run) has a
    name and tags of its own: those the saved run had are dropped unless given again; a resume keeps them."""
    saved_run = run_of_configs(config.get("config") or [])
    if saved_run is None or config.get("ckpt_path") or not (saved_run / "config.yaml").is_file():
        return
    saved = read_yaml(saved_run / "config.yaml") or {}
    for key, default in (("run_name", None), ("tags", [])):
        if not option_given(given, key) and config.get(key) == saved.get(key, default):
            config[key] = default


def absolute_data_paths(data: Any, datamodule: Any) -> None:
    """A relative folder given to the data module (``data.root``, ``data.data_dir``...) is saved in the run's
    config as the absolute folder the module resolved it to: the config then re-runs from any folder."""
    init_args = data.get("init_args") if data is not None else None
    resolved = datamodule.resolved_paths() if hasattr(datamodule, "resolved_paths") else {}
    for key, path in resolved.items():
        value = init_args.get(key) if init_args is not None else None
        if isinstance(value, str) and not Path(value).is_absolute():
            init_args[key] = str(path.resolve())


def one_of_each(loggers: list[Any]) -> list[Any]:
    """The loggers, the first of each class only: a logger fragment may add the default TensorBoard logger again,
    and two loggers of one kind would write the same run folder twice."""
    kept: dict[type, Any] = {}
    for each in loggers:
        kept.setdefault(type(each), each)
    return list(kept.values())


ANNEALED = 0.01  # a learning rate that ended below this fraction of its start was annealed


def lr_annealed(trainer: L.Trainer) -> bool:
    """True when every optimizer's learning rate ended below ``ANNEALED`` × its initial value (cosine or one-cycle
    to zero, step decays): the last weights are then the schedule's result, and the best-val epoch is noise."""
    groups = [group for optimizer in trainer.optimizers for group in optimizer.param_groups if group.get("initial_lr")]
    return bool(groups) and all(group["lr"] < ANNEALED * group["initial_lr"] for group in groups)


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


def check_config_files(args: Sequence[str]) -> list[str]:
    """``args`` with packaged recipes found (``--config mnist/lenet5.yaml`` from any folder); fail early, naming the
    file, when a ``--config`` file does not exist, is empty, is not UTF-8 text or valid YAML, gives a key twice, or
    is not a mapping.

    jsonargparse would otherwise try the value as inline YAML and report "unrecognized arguments", or
    report the YAML problem without the file's name.
    """
    args = with_packaged_configs(args)
    for value in config_paths(args):
        path = Path(value)
        check_file(path, "config file", f" (resolved to {path.resolve()})")
        content = read_yaml(path)
        if not isinstance(content, dict):
            kind = "empty" if content is None else f"a {type(content).__name__}, not a mapping of keys to values"
            raise ConfigError(f"config file {value} is {kind}; see 'lightning-cnn recipes' for examples")
    return args


def available_devices() -> dict[str, int]:
    """The accelerators Lightning can use on this machine, with their device counts."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    found = {}
    for name in sorted(AcceleratorRegistry.available_accelerators()):
        accelerator = AcceleratorRegistry[name]["accelerator"]
        try:
            if accelerator.is_available():
                found[name] = int(accelerator.auto_device_count())
        except Exception:  # an accelerator whose package is missing is not available
            continue
    return found


def check_accelerator(trainer: Any) -> None:
    """``trainer.accelerator`` and ``trainer.devices`` that this machine does not have fail with one line naming
    the key and what is available (Lightning's own message names neither, or says 'No supported gpu backend')."""
    accelerator = trainer.get("accelerator")
    if not isinstance(accelerator, str) or accelerator == "auto":
        return
    available = available_devices()
    listed = ", ".join(f"{name} ({count} device{'s' * (count > 1)})" for name, count in available.items())
    names = {"gpu": ["cuda", "mps"], "tpu": ["tpu", "xla"]}.get(accelerator, [accelerator])
    chosen = next((name for name in names if name in available), None)
    if chosen is None:
        raise ConfigError(
            f"trainer.accelerator: '{accelerator}' is not available on this machine; available: {listed}."
            " Use --trainer.accelerator auto (or one of those)"
        )
    if chosen == "cpu":  # any number of CPU processes can run
        return
    devices = trainer.get("devices")
    wanted = len(devices) if isinstance(devices, (list, tuple)) else None
    if isinstance(devices, int) or (isinstance(devices, str) and devices.isdigit()):
        wanted = int(devices)
    if wanted is not None and wanted > available[chosen]:
        raise ConfigError(
            f"trainer.devices: {devices} asked for with trainer.accelerator '{accelerator}', but this machine has"
            f" {available[chosen]} {chosen} device{'s' * (available[chosen] > 1)}; available: {listed}"
        )


def check_checkpoint_model(path: Path, model_class_path: str | None, trust: bool = False) -> None:
    """A checkpoint of one model given with another explicitly chosen one is an error, not a silent switch."""
    saved = checkpoint_model(path, trust)
    if saved and model_class_path and saved != model_class_path:
        if model_class_path != DEFAULT_MODEL:
            raise ConfigError(
                f"ckpt_path: {path} holds a {saved.rsplit('.', 1)[-1]}, not a {model_class_path.rsplit('.', 1)[-1]};"
                f" give --model {saved.rsplit('.', 1)[-1]} (or the run's own config.yaml with --config)"
            )
        rank_zero_info(f"ckpt_path: {path} holds a {saved}; using that model")


def note_changed_options(run_dir: Path, config: Any) -> None:
    """Say which model and data options of a resumed run differ from its ``config.yaml``: its weights were trained
    with the old ones."""
    saved = run_dir / "config.yaml"
    changed = preflight.changed_options(read_yaml(saved) or {}, config) if saved.is_file() else []
    if changed:
        rank_zero_info(
            "Resuming with model and data options other than those its weights were trained with (its config.yaml):"
            f" {'; '.join(changed[:5])}{'; ...' if len(changed) > 5 else ''}"
        )


def check_weights_fit(path: Path, model: torch.nn.Module, trust: bool = False) -> None:
    """A checkpoint whose weights have other names or shapes than ``model``'s fails with one line naming the first."""
    saved = read_checkpoint(path, mmap=True, trust=trust).get("state_dict") or {}
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
