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

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_cnn.callbacks import RunCheckpoint
from lightning_cnn.classifier import ImageClassifier
from lightning_cnn.data import DATAMODULES, ImageDataModule
from lightning_cnn.errors import ConfigError, LightningCnnError
from lightning_cnn.messages import summarize_parser_error
from lightning_cnn.models import MODELS

# Batches are slices of in-memory tensors, so worker processes only add overhead: silence the advice.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")


class ArgumentParser(LightningArgumentParser):
    """A parser whose errors are one line (plus a hint), not jsonargparse's wall of union-type messages."""

    def error(self, message: str, ex: Exception | None = None) -> None:  # type: ignore[override]
        if not getattr(self, "exit_on_error", True):
            super().error(message, ex)
        if os.environ.get("LIGHTNING_CNN_DEBUG"):
            sys.stderr.write(f"{message}\n")
        choices = {"model": sorted(MODELS), "data": sorted(DATAMODULES)}
        sys.stderr.write(f"error: {summarize_parser_error(message, choices)}\n")
        sys.stderr.write(f"hint: '{self.prog} --help' lists every option\n")
        sys.exit(2)


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
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After fit, test the best checkpoint (the last weights if none was saved) on the test split.",
        )
        parser.set_defaults(
            {
                "model": {"class_path": "lightning_cnn.models.LeNet5"},
                "data": {"class_path": "lightning_cnn.data.MNISTDataModule"},
            }
        )

    def after_fit(self) -> None:
        if not self.config.fit.get("test_after_fit"):
            return
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)


def cli_main(args: list[str] | None = None, run: bool = True) -> CNNLightningCLI:
    """Build (and by default run) the CLI; ``args`` replaces ``sys.argv[1:]``, as tests do."""
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
    )


def check_config_files(args: list[str]) -> None:
    """Fail early, naming the file, when a ``--config`` file does not exist.

    jsonargparse would otherwise try the value as inline YAML and report "unrecognized arguments".
    """
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--config" and i + 1 < len(args) else None
        if arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        if value is not None and ":" not in value and not Path(value).is_file():
            raise ConfigError(f"config file not found: {value} (resolved to {Path(value).resolve()})")


def _user_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind ``err``: jsonargparse wraps errors raised in constructors."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (LightningCnnError, MisconfigurationException)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def main(args: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit."""
    if sys.argv and sys.argv[0].endswith("__main__.py"):
        sys.argv[0] = "python -m lightning_cnn"
    argv = sys.argv[1:] if args is None else args
    try:
        check_config_files(argv)
        cli_main(args)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as err:
        user_error = _user_error(err)
        if user_error is None:
            raise
        sys.stderr.write(f"error: {' '.join(str(user_error).split())}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
