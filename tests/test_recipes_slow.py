"""Recipes on the real datasets, checked against the accuracy the README promises (minutes each)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_cnn.data import MNISTDataModule

CONFIGS = Path(__file__).parent.parent / "configs"


def real_mnist_available() -> bool:
    return MNISTDataModule().files_present()


def last_scalar(run_dir: Path, tag: str) -> float:
    values = []
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            values += [e.value for e in acc.Scalars(tag)]
    return values[-1]


@pytest.mark.slow
@pytest.mark.skipif(not real_mnist_available(), reason="set LIGHTNING_CNN_DATA to a folder with MNIST/raw")
@pytest.mark.parametrize(
    ("recipe", "minimum"),
    [
        ("mnist/lenet5.yaml", 0.990),
        ("mnist/mlp.yaml", 0.978),
    ],  # the longer recipes, and every recipe over several seeds and thread counts: `make results`
)
def test_mnist_recipe_reaches_its_accuracy(recipe, minimum, run_cli, tmp_path):
    code, err = run_cli(
        "fit", "--config", CONFIGS / recipe, "--trainer.default_root_dir", tmp_path,
        "--trainer.enable_progress_bar", "false",
    )  # fmt: skip
    assert code == 0, err
    test_acc = last_scalar(tmp_path / "lightning_logs" / "version_0", "test/acc")
    print(f"{recipe}: test/acc {test_acc:.4f}")
    assert test_acc >= minimum
