"""Pre-flight: a setting that can only fail is refused before the run folder exists and before any data loads, with
one line naming the key, the value and what is allowed, and exit code 2."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
from jsonargparse import Namespace

from lightning_cnn.data import ImageFolderDataModule
from lightning_cnn.models import AlexNet, LeNet5
from lightning_cnn.preflight import construction_error
from tests.helpers.runs import QUICK


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # torch checks an optimizer's arguments only when fit builds it (after the run folder was written)
        (["--model.optimizer.lr", "-0.1"], ["model.optimizer.init_args.lr=-0.1", "Invalid learning rate"]),
        (
            ["--model.optimizer", "SGD", "--model.optimizer.lr", "0.1", "--model.optimizer.nesterov", "true"],
            ["model.optimizer.init_args.momentum=0.0", "nesterov=True", "Nesterov momentum requires a momentum"],
        ),
        (["--model.lr_scheduler", "StepLR"], ["model.lr_scheduler: StepLR needs step_size", "--model.lr_scheduler"]),
        # some schedules fail only when stepped, at the end of the first epoch
        (["--model.lr_scheduler", "StepLR", "--model.lr_scheduler.step_size", "0"], ["StepLR", "'step_size': 0"]),
        (
            ["--model.lr_scheduler", "OneCycleLR", "--model.lr_scheduler.max_lr", "0.1"]
            + ["--model.lr_scheduler.pct_start", "2"],
            ["model.lr_scheduler.init_args.pct_start=2.0", "OneCycleLR"],
        ),
        # a bad format spec in the checkpoint name failed after a whole epoch
        (["--checkpoint.filename", "{epoch:bad}"], ["checkpoint.filename: '{epoch:bad}'", "{epoch:03d}"]),
        (["--seed_everything", str(2**32)], ["seed_everything: 4294967296 is out of range", "0 to 4294967295"]),
        # trainer settings Lightning accepts at construction and fails on (or ignores) once training runs
        (["--trainer.val_check_interval", "0"], ["trainer.val_check_interval: 0 is not allowed", "fraction"]),
        (["--trainer.accumulate_grad_batches", "0"], ["trainer.accumulate_grad_batches: 0", "1 or more"]),
        (["--trainer.limit_train_batches", "1.5"], ["trainer.limit_train_batches: 1.5", "fraction in [0, 1]"]),
        # no number of any option is NaN or infinite
        (["--model.label_smoothing", ".nan"], ["model.label_smoothing: nan", "finite"]),
        # DDP averages the gradients of what trains when it starts: a backbone unfrozen later would drift apart
        (
            ["--model", "ResNet18", "--model.freeze_backbone", "true", "--model.unfreeze_at_epoch", "1"]
            + ["--trainer.strategy", "ddp", "--trainer.devices", "2"],
            ["model.unfreeze_at_epoch: 1 with 2 processes", "train with one process"],
        ),
        # every folder the run writes can be created and written
        (["--trainer.default_root_dir", "{file}"], ["trainer.default_root_dir: {file} is a file"]),
        (["--checkpoint.dirpath", "{file}/checkpoints"], ["checkpoint.dirpath", "{file} is a file"]),
    ],
)
def test_what_can_only_fail_fails_before_anything_is_written(run_cli, tmp_path, args, expected):
    (tmp_path / "file").write_text("a file where a folder should be")
    root = tmp_path / "runs"
    args = [a.replace("{file}", str(tmp_path / "file")) for a in args]
    # no data at all: a check that came after data loading would fail on the data instead
    data = ["--data.data_dir", tmp_path / "no_data", "--data.download", "false"]
    code, err = run_cli("fit", *data, "--trainer.default_root_dir", root, *QUICK, *args)
    assert code == 2, err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    for fragment in expected:
        assert fragment.replace("{file}", str(tmp_path / "file")) in line
    assert not root.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_folder_that_cannot_be_written_is_named_before_the_run(run_cli, mnist_dir, tmp_path, monkeypatch):
    """A read-only or full file system refuses the probe file; root ignores permissions, so the refusal is patched."""
    real = tempfile.TemporaryFile

    def refuse(*args, dir=None, **kwargs):  # noqa: A002 - tempfile's own keyword
        if dir is not None and Path(dir) == tmp_path:
            raise PermissionError(13, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path / "runs", *QUICK)
    assert code == 2
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert f"trainer.default_root_dir: {tmp_path / 'runs'} cannot be created in {tmp_path} (Permission denied)" in line
    assert list(tmp_path.iterdir()) == []


def test_the_cache_folder_of_an_image_folder_is_checked(run_cli, image_folder_dir, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "file" / "cache"))
    code, err = run_cli(
        "fit", "--data", "ImageFolderDataModule", "--data.root", image_folder_dir / "folders" / "train",
        "--trainer.default_root_dir", tmp_path / "runs", *QUICK,
    )  # fmt: skip
    assert code == 2
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "data.cache_dir ($LIGHTNING_CNN_CACHE)" in line and f"{tmp_path}/file is a file" in line
    assert not (tmp_path / "runs").exists()


def test_settings_that_pass_the_checks_still_train(run_cli, mnist_dir, tmp_path):
    """The checks build the optimizer and scheduler and probe the folders without changing what fit does."""
    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *QUICK,
        "--model.optimizer", "SGD", "--model.optimizer.lr", "0.05", "--model.optimizer.momentum", "0.9",
        "--model.optimizer.nesterov", "true", "--model.lr_scheduler", "StepLR", "--model.lr_scheduler.step_size", "1",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
        "--checkpoint.dirpath", tmp_path / "new" / "checkpoints",
    )  # fmt: skip
    assert code == 0, err
    assert [p.name for p in (tmp_path / "new" / "checkpoints").iterdir()] != []
    assert not list(tmp_path.rglob(".lightning-cnn-write-check-*"))


def construction_failure(cls: type, **kwargs: object) -> BaseException:
    """The error of building ``cls`` with ``kwargs``, inside a wrapper as jsonargparse raises it."""
    try:
        cls(**kwargs)
    except Exception as err:  # noqa: BLE001 - whatever the constructor raises
        wrapper = ValueError("Does not validate against any of the Union subtypes")
        wrapper.__cause__ = err
        return wrapper
    raise AssertionError(f"{cls.__name__} was built")


def class_config(key: str, class_path: str, **init_args: object) -> Namespace:
    return Namespace({key: Namespace(class_path=class_path, init_args=Namespace(**init_args))})


def test_a_torch_error_deep_in_a_constructor_names_the_argument_it_failed_on():
    # torch's message names nothing the user gave; of the changed options, width alone fails to build
    options = {"width": 1e12, "dropout": 0.3, "batch_norm": True}
    err = construction_failure(AlexNet, **options)
    found = construction_error(class_config("model", "lightning_cnn.models.AlexNet", **options), err)
    assert str(found).startswith("model: AlexNet cannot be built with width=1000000000000.0: ")
    # torch's message says what is wrong ("negative padding")
    err = construction_failure(LeNet5, padding=-1, activation="gelu")
    found = construction_error(class_config("model", "lightning_cnn.models.LeNet5", padding=-1, activation="gelu"), err)
    assert str(found) == "model: LeNet5 cannot be built with padding=-1: negative padding is not supported"


def test_a_failure_nothing_points_at_is_the_models_on_the_datas_shape():
    found = construction_error(class_config("model", "lightning_cnn.models.LeNet5"), RuntimeError("out of memory"))
    assert str(found) == (
        "model: LeNet5 cannot be built (input_shape and num_classes come from the data options): out of memory"
    )


def test_a_data_modules_value_in_the_message_is_named_without_building_it_again(monkeypatch):
    built = []
    init = ImageFolderDataModule.__init__
    monkeypatch.setattr(ImageFolderDataModule, "__init__", functools.wraps(init)(lambda *a, **k: built.append(k)))
    config = class_config("data", "lightning_cnn.data.ImageFolderDataModule", root="/data", train_dir="/other/train")
    err = ValueError("'/other/train' is not in the subpath of '/data'")
    found = construction_error(config, err)
    assert str(found) == (
        "data: ImageFolderDataModule cannot be built with train_dir='/other/train': '/other/train' is not in the"
        " subpath of '/data'"
    )
    assert built == []
