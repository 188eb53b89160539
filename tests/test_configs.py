"""Every YAML under configs/ parses and runs ``fit --trainer.fast_dev_run true`` on tiny data.

Recipes name their data module; fragments (optimizer, schedule, trainer settings) are run on top of the
LeNet-5 MNIST recipe. A new file under configs/ is tested the day it is added.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import QUICK

CONFIGS = Path(__file__).parent.parent / "configs"
BASE_RECIPE = CONFIGS / "mnist" / "lenet5.yaml"
# data module class name → the fixture that provides a tiny copy of its data
DATA_FIXTURES = {"MNISTDataModule": "mnist_dir", "CIFAR10DataModule": "cifar10_dir"}


def data_class(config: dict) -> str:
    data = config.get("data") or yaml.safe_load(BASE_RECIPE.read_text())["data"]
    return data["class_path"].rsplit(".", 1)[-1]


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_runs_a_fast_dev_run(path: Path, run_cli, request, tmp_path):
    config = yaml.safe_load(path.read_text())
    configs = ["--config", path] if "model" in config else ["--config", BASE_RECIPE, "--config", path]
    name = data_class(config)
    assert name in DATA_FIXTURES, f"add a tiny-data fixture for {name} to DATA_FIXTURES in {__file__}"
    data_dir = request.getfixturevalue(DATA_FIXTURES[name])
    code, err = run_cli(
        "fit", *configs, "--data.data_dir", data_dir, "--trainer.fast_dev_run", "true",
        "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    assert code == 0, err
