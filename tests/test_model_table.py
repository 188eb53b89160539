"""``lightning-cnn models``: parameters and FLOPs of every registered model."""

from __future__ import annotations

import yaml
from lightning.pytorch.utilities.model_summary import ModelSummary

from lightning_cnn.config_files import PACKAGED as CONFIGS
from lightning_cnn.models import MLP, LeNet5
from lightning_cnn.tools.models import (
    flops_per_image,
    markdown_table,
    model_rows,
    recipe_rows,
    recipe_table,
    recipes,
)


def test_flops_count_two_per_multiply_add():
    mlp = MLP(num_classes=10, input_shape=(1, 28, 28), hidden=[128])
    assert flops_per_image(mlp, (1, 28, 28)) == 2 * (784 * 128 + 128 * 10)
    lenet = LeNet5(num_classes=10, input_shape=(1, 28, 28))
    convs = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 6 * 25  # conv 1 (padding 2) and conv 2 (valid), per output pixel
    assert flops_per_image(lenet, (1, 28, 28)) == 2 * (convs + 400 * 120 + 120 * 84 + 84 * 10)


def test_flops_are_the_total_of_lightnings_model_summary():
    # the summary that `fit` prints runs the model's example input, one image, as the table does
    lenet = LeNet5(num_classes=10, input_shape=(1, 28, 28))
    assert tuple(lenet.example_input_array.shape) == (1, 1, 28, 28)
    assert flops_per_image(lenet, (1, 28, 28)) == ModelSummary(lenet).total_flops == 833_040
    assert "| `LeNet5` | 61,706 / 83,126 | 0.83 M / " in markdown_table(model_rows({"LeNet5": LeNet5}))


def test_table_rows_hold_parameters_flops_and_recipes():
    rows = model_rows({"LeNet5": LeNet5, "MLP": MLP})
    assert rows[0]["params MNIST"] == 61_706 and rows[0]["params CIFAR-10"] > 61_706
    assert all(row["FLOPs CIFAR-10"] > row["FLOPs MNIST"] > 0 for row in rows)
    assert "configs/mnist/lenet5.yaml" in recipes("LeNet5")
    table = markdown_table(rows).splitlines()
    assert len(table) == 2 + len(rows) and table[2].startswith("| `LeNet5` | 61,706 / ")


def test_recipe_rows_build_each_recipes_model_with_its_options(tmp_path):
    (tmp_path / "configs" / "mnist").mkdir(parents=True)
    for name in ("convnet.yaml", "convnet_bn.yaml", "lenet5.yaml"):
        (tmp_path / "configs" / "mnist" / name).write_text((CONFIGS / "mnist" / name).read_text())
    (tmp_path / "configs" / "fragment.yaml").write_text("trainer:\n  max_epochs: 1\n")  # no model: no row
    rows = {row["recipe"]: row for row in recipe_rows(tmp_path / "configs")}
    assert sorted(rows) == [f"configs/mnist/{n}" for n in ("convnet.yaml", "convnet_bn.yaml", "lenet5.yaml")]
    assert rows["configs/mnist/lenet5.yaml"]["params"] == 61_706
    # batch norm adds a scale and a shift per channel and replaces the conv biases: +2 × 96 - 96
    bn_extra = rows["configs/mnist/convnet_bn.yaml"]["params"] - rows["configs/mnist/convnet.yaml"]["params"]
    assert bn_extra == 32 + 64
    assert "| `configs/mnist/lenet5.yaml` | `LeNet5` | 1×28×28 | 61,706 |" in recipe_table(list(rows.values()))


def test_every_recipe_under_configs_has_a_row():
    # every config that names a model (fragments do not); an image folder's shape comes from its options
    configs = {str(p.relative_to(CONFIGS.parent)): yaml.safe_load(p.read_text()) or {} for p in CONFIGS.rglob("*.yaml")}
    named = {name for name, config in configs.items() if "class_path" in (config.get("model") or {})}
    rows = {row["recipe"]: row for row in recipe_rows(CONFIGS)}
    assert set(rows) == named
    assert rows["configs/cifar10_jpeg/resnet20.yaml"]["shape"] == "3×32×32"
