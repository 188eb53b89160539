"""Every YAML under configs/ parses and runs ``fit --trainer.fast_dev_run true`` on tiny data.

Recipes name their data module; fragments (optimizer, schedule, trainer settings) are run on top of the
LeNet-5 MNIST recipe. A new file under configs/ is tested the day it is added. Search spaces (configs/search/)
are not fit configs: tests/test_search.py checks them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lightning_cnn.models.losses import LOSSES
from tests.helpers.runs import QUICK
from tests.helpers.writers import write_two_classes

CONFIGS = Path(__file__).parent.parent / "configs"
BASE_RECIPE = CONFIGS / "mnist" / "lenet5.yaml"
# data module class name → the fixture that provides a tiny copy of its data
DATA_FIXTURES = {
    "MNISTDataModule": "mnist_dir",
    "FashionMNISTDataModule": "mnist_dir",  # the MNIST fixture holds its folder too
    "KMNISTDataModule": "mnist_dir",
    "CIFAR10DataModule": "cifar10_dir",
    "CIFAR100DataModule": "cifar100_dir",
    "SVHNDataModule": "svhn_dir",
    "ImageFolderDataModule": "image_folder_dir",
    "MultiLabelImageFolder": "mnist_pairs_dir",
}


def data_class(config: dict) -> str:
    data = config.get("data") or {}
    if "class_path" not in data:  # a fragment that sets data options runs on the base recipe's data module
        data = yaml.safe_load(BASE_RECIPE.read_text())["data"]
    return data["class_path"].rsplit(".", 1)[-1]


def cannot_run_here(config: dict) -> str | None:
    """Why a config cannot train inside this test process, if it cannot."""
    trainer = config.get("trainer") or {}
    if str(trainer.get("strategy", "")).startswith("ddp"):
        return "DDP launches processes (tests/test_ddp.py trains with configs/trainer/ddp_cpu.yaml)"
    if trainer.get("accelerator") == "gpu" and not torch.cuda.is_available():
        return "needs a GPU"
    return None


def two_classes_only(config: dict) -> bool:
    """A fragment whose loss trains one logit (binary cross-entropy), which needs data of two classes."""
    loss = ((config.get("model") or {}).get("init_args") or {}).get("loss") or {}
    name = str(loss.get("class_path", "")).rsplit(".", 1)[-1]
    return name in LOSSES and LOSSES[name].single_logit


FIT_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent != CONFIGS / "search")


@pytest.mark.parametrize("path", FIT_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_runs_a_fast_dev_run(path: Path, run_cli, request, tmp_path):
    config = yaml.safe_load(path.read_text())
    is_recipe = "class_path" in (config.get("model") or {})
    configs = ["--config", path] if is_recipe else ["--config", BASE_RECIPE, "--config", path]
    if two_classes_only(config):  # on a two-class image folder instead of the base recipe's ten digits
        folder = write_two_classes(tmp_path / "two_classes", 8)
        configs += ["--data", "ImageFolderDataModule", "--data.root", folder, "--data.test_size", "0.25"]
        configs += ["--data.cache", "false"]
    name = data_class(config)
    assert name in DATA_FIXTURES, f"add a tiny-data fixture for {name} to DATA_FIXTURES in {__file__}"
    data_dir = request.getfixturevalue(DATA_FIXTURES[name])
    run = ("--trainer.fast_dev_run", "true") if cannot_run_here(config) is None else ("--print_config",)
    code, err = run_cli(
        "fit", *configs, "--data.data_dir", data_dir, "--trainer.default_root_dir", tmp_path, *QUICK, *run,
    )  # fmt: skip
    assert code == 0, err


def test_the_profile_preset_writes_its_report_into_the_run_folder(mnist_dir, run_cli, tmp_path):
    code, err = run_cli(
        "fit", "--config", BASE_RECIPE, "--config", CONFIGS / "debug" / "profile.yaml", "--data.data_dir", mnist_dir,
        "--trainer.default_root_dir", tmp_path, *QUICK, "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1", "--test_after_fit", "false",
    )  # fmt: skip
    assert code == 0, err
    report = tmp_path / "lightning_logs" / "version_0" / "fit-profile.txt"
    assert report.is_file() and "run_training_batch" in report.read_text()
