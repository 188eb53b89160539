"""Bagging and stacking: bootstrap resamples of the training split, the ``bag`` tool that trains K members on them,
and the stacking combiner that ``ensemble`` fits on the validation split."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from lightning_cnn.data import MNISTDataModule
from lightning_cnn.inference.calibration import probability_ece
from lightning_cnn.inference.stacking import fit_stacker
from lightning_cnn.inference.trained import load_trained
from tests.helpers.runs import QUICK


def splits(mnist_dir, **options) -> MNISTDataModule:
    datamodule = MNISTDataModule(data_dir=str(mnist_dir), download=False, val_size=0.2, **options)
    datamodule.setup("fit")
    return datamodule


def rows(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_bootstrap_seed_resamples_the_training_split_with_replacement_and_leaves_validation_alone(mnist_dir):
    plain, first, again, other = (splits(mnist_dir, bootstrap_seed=s) for s in (None, 1, 1, 2))
    for resampled in (first, other):
        assert torch.equal(resampled.val_set.images, plain.val_set.images)
        assert len(resampled.train_set) == len(plain.train_set)
        distinct = rows(resampled.train_set.images)
        assert distinct <= rows(plain.train_set.images)  # drawn from the training split only
        assert 0.55 < len(distinct) / len(plain.train_set) < 0.7  # with replacement: about 1 - 1/e are distinct
    assert torch.equal(first.train_set.images, again.train_set.images)  # seeded
    assert not torch.equal(first.train_set.images, other.train_set.images)


def test_stacking_learns_what_averaging_cannot():
    """One member is right 70 % of the time, the other always says the next class: averaging follows the confident
    wrong one half the time, stacking learns to read the second member's answer as a shifted label."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (2000,), generator=generator)
    noisy = torch.where(torch.rand(2000, generator=generator) < 0.7, labels, torch.randint(0, 5, (2000,)))
    good = torch.nn.functional.one_hot(noisy, 5).float() * 0.6 + 0.08
    shifted = torch.nn.functional.one_hot((labels + 1) % 5, 5).float() * 0.9 + 0.025
    train, test = slice(0, 1000), slice(1000, None)
    stacker = fit_stacker([good[train], shifted[train]], labels[train])
    stacked = stacker.probabilities([good[test], shifted[test]]).argmax(1)
    averaged = ((good[test] + shifted[test]) / 2).argmax(1)
    assert (stacked == labels[test]).float().mean() > 0.99
    assert (averaged == labels[test]).float().mean() < 0.7


def test_bag_trains_members_on_bootstrap_resamples_and_ensemble_reports_bagging_and_stacking(
    run_cli, mnist_dir, tmp_path
):
    code, err = run_cli(
        "bag", "--members", "2", "--model", "LeNet5", "--data", "MNISTDataModule", "--data.data_dir", mnist_dir,
        "--data.download", "false", *QUICK, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4",
        "--trainer.default_root_dir", tmp_path, "--preview.num_images", "0", "--test_after_fit", "false",
    )  # fmt: skip
    assert code == 0, err
    logs = tmp_path / "lightning_logs"
    runs = sorted(logs.glob("version_*"))
    assert len(runs) == 2
    for seed, run in enumerate(runs):
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["data"]["init_args"]["bootstrap_seed"] == seed and config["seed_everything"] == seed
    (bag_dir,) = logs.glob("bag_*")
    record = json.loads((bag_dir / "bag.json").read_text())
    assert [r["run_dir"] for r in record["runs"]] == [str(r) for r in runs]

    out = tmp_path / "ensemble.json"
    code, err = run_cli("ensemble", "--ckpt_path", *runs, "--output", out)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert [m["bootstrap_seed"] for m in result["members"]] == [0, 1]
    both = {"test_acc": result["ensemble_test_acc"], "test_ece": result["ensemble_test_ece"]}
    assert result["bagging"] == {"members": 2, **both}
    # stacking: the logistic regression fit on the members' outputs for the 240 validation images, tested on 300
    members = [load_trained(run) for run in runs]
    datamodule = splits(mnist_dir)
    datamodule.setup("test")
    val = [m.probabilities(datamodule.val_set.images) for m in members]
    test = [m.probabilities(datamodule.test_set.images) for m in members]
    stacked = fit_stacker(val, datamodule.val_set.labels).probabilities(test)
    expected = (stacked.argmax(1) == datamodule.test_set.labels).float().mean().item()
    expected_ece = probability_ece(stacked, datamodule.test_set.labels)
    assert result["stacking"] == {
        "test_acc": pytest.approx(expected, abs=1e-6),
        "test_ece": pytest.approx(expected_ece, abs=1e-5),
        "val_images": 240,
    }
