"""Every private name of a dependency that lightning_cnn.internals fences still exists in the installed versions."""

from __future__ import annotations

import importlib

import lightning as L
import optuna
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, WandbLogger
from torch.optim.lr_scheduler import OneCycleLR, StepLR

from lightning_cnn import internals


@pytest.mark.parametrize(
    ("owner", "name"), [(owner, name) for owner, names in internals.OVERRIDDEN.items() for name in names]
)
def test_each_private_member_we_override_or_read_exists(owner, name, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses a local file store unless told
    module, cls_name = owner.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), cls_name)
    # classes whose listed members are instance attributes, set by their constructor
    instances = {
        ModelCheckpoint: lambda: ModelCheckpoint(),
        L.LightningModule: lambda: L.LightningModule(),
        OneCycleLR: lambda: OneCycleLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), 1.0, 10),
        CSVLogger: lambda: CSVLogger(tmp_path),
        MLFlowLogger: lambda: MLFlowLogger(tracking_uri=(tmp_path / "mlruns").as_uri()),
        WandbLogger: lambda: WandbLogger(save_dir=tmp_path, offline=True),
    }
    target = instances[cls]() if cls in instances else cls
    assert hasattr(target, name), f"{owner}.{name} is gone: adapt lightning_cnn (see lightning_cnn/internals.py)"


def test_the_fenced_helpers_work_on_the_installed_versions(tmp_path):
    assert internals.flat_hparams({"a": {"b": 1}, "c": None}) == {"a/b": 1, "c": "None"}
    assert internals.flat_params({"a": {"b": (1, 2)}, "c": None}) == {"a/b": (1, 2), "c": None}
    scheduler = StepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), 1, 0.5)
    scheduler.last_epoch = 1
    assert internals.scheduled_lrs(scheduler) == [0.5]
    internals.set_last_lrs(scheduler, [0.25])
    assert scheduler.get_last_lr() == [0.25]
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(tmp_path) as writer:
        assert hasattr(internals.tensorboard_file_writer(writer), "add_summary")
    study = optuna.create_study()
    trial = study.ask()
    internals.fail_trial(study, study.trials[trial.number])
    assert study.trials[trial.number].state == optuna.trial.TrialState.FAIL


def test_the_hook_that_orders_unions_finds_jsonargparse_s_function():
    from jsonargparse import _typehints

    internals.int_before_float()
    assert getattr(_typehints, "_lightning_cnn_int_before_float", False)
    assert callable(_typehints.sort_subtypes_for_union)  # tests/test_environments.py parses through it


class Tiny(L.LightningModule):
    """A model that saves its hyper-parameters, as every lightning_cnn model does."""

    def __init__(self, width: int = 1) -> None:
        super().__init__()
        self.save_hyperparameters()


def test_lightning_s_cli_saves_the_hyper_parameter_keys_we_read():
    cli = LightningCLI(
        Tiny, subclass_mode_model=True, seed_everything_default=False, run=False, args=["--model", f"{__name__}.Tiny"]
    )
    assert internals.saved_class_path(cli.model.hparams) == f"{__name__}.Tiny"
    assert internals.INSTANTIATOR_KEY in cli.model.hparams
    assert internals.saved_class_path(Tiny().hparams) is None


class Parsed(Exception):
    """Stops a LightningCLI once its arguments are parsed, carrying it."""


class ParseOnly(LightningCLI):
    def before_instantiate_classes(self) -> None:
        raise Parsed(self)


def test_the_cli_helpers_find_the_subcommands_parsers_and_their_class_groups():
    with pytest.raises(Parsed) as parsed:
        ParseOnly(
            Tiny, subclass_mode_model=True, seed_everything_default=False, args=["fit", "--model", f"{__name__}.Tiny"]
        )
    parsers = internals.subcommand_parsers(parsed.value.args[0])
    assert {"fit", "validate", "test", "predict"} <= set(parsers)
    groups = internals.class_groups(parsers["fit"])
    assert {"model", "optimizer", "lr_scheduler"} <= set(groups)
    assert "trainer" not in groups  # a group of options
