"""Resume and reproducibility: an interrupted run resumed with ``--ckpt_path last`` ends where an
uninterrupted one does, and a seed makes a run repeatable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_cnn.checkpoints import record_sum, sha256
from tests.helpers.runs import QUICK, scalars

CONFIGS = Path(__file__).parent.parent / "configs"
MODELS = {
    "LeNet5": ["--model", "LeNet5"],
    # dropout and batch-norm statistics: the random streams and buffers must resume too
    "ConvNet-dropout-bn": ["--model", "ConvNet", "--model.dropout", "0.5", "--model.batch_norm", "true"],
}


def train(run_cli, root: Path, mnist_dir: Path, model: list[str], *args: object) -> None:
    code, err = run_cli(
        "fit", "--config", CONFIGS / "trainer" / "deterministic.yaml", *model, "--data.data_dir", mnist_dir,
        "--model.lr_scheduler", "torch.optim.lr_scheduler.CosineAnnealingLR", "--model.lr_scheduler.T_max", 4,
        "--trainer.default_root_dir", root, *QUICK, *args,
    )  # fmt: skip
    assert code == 0, err


@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
def test_two_epochs_plus_two_resumed_equal_four_straight(model, run_cli, mnist_dir, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(run_cli, straight, mnist_dir, model, "--trainer.max_epochs", 4)
    train(run_cli, resumed, mnist_dir, model, "--trainer.max_epochs", 2)
    train(run_cli, resumed, mnist_dir, model, "--trainer.max_epochs", 4, "--ckpt_path", "last")

    run = resumed / "lightning_logs" / "version_0"
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]  # went on in its own folder
    assert (run / "config.yaml").is_file() and (run / "config_resumed_1.yaml").is_file()
    a = torch.load(straight / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 3
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    states = zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values(), strict=True)
    for state_a, state_b in states:
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert a["lr_schedulers"] == b["lr_schedulers"]
    metrics_a, metrics_b = scalars(straight / "lightning_logs" / "version_0"), scalars(run)
    for tag in ("val/acc", "val/loss", "train/loss"):
        assert metrics_a[tag] == metrics_b[tag], tag


def test_ckpt_path_last_without_a_previous_run_is_one_clear_line(run_cli, mnist_dir, tmp_path):
    code, err = run_cli(
        "fit", "--ckpt_path", "last", "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path
    )
    assert code == 2
    assert f"ckpt_path: 'last' found no run with a checkpoint under {tmp_path}/lightning_logs" in err


def test_the_same_seed_repeats_a_run_and_another_seed_does_not(run_cli, mnist_dir, tmp_path):
    model = MODELS["ConvNet-dropout-bn"]
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        train(run_cli, tmp_path / name, mnist_dir, model, "--trainer.max_epochs", 1, "--seed_everything", seed)
    runs = {name: scalars(tmp_path / name / "lightning_logs" / "version_0") for name in "abc"}
    assert runs["a"]["train/loss"] == runs["b"]["train/loss"]
    assert runs["a"]["val/loss"] == runs["b"]["val/loss"]
    assert runs["a"]["train/loss"] != runs["c"]["train/loss"]


def test_val_acc_best_is_kept_in_checkpoints_and_a_resumed_run_goes_on_from_it(run_cli, mnist_dir, tmp_path):
    short = ("--trainer.limit_train_batches", 2)
    train(run_cli, tmp_path, mnist_dir, MODELS["LeNet5"], "--trainer.max_epochs", 1, *short)
    run = tmp_path / "lightning_logs" / "version_0"
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=False)
    first = scalars(run)["val/acc_best"]
    assert len(first) == 1 and float(checkpoint["val_acc_best"]) == pytest.approx(first[0])

    # a best no accuracy can reach: a resumed run that lost it would log its own epoch's val/acc instead
    checkpoint["val_acc_best"] = torch.tensor(1.5)
    torch.save(checkpoint, last)
    record_sum(last, sha256(last))  # the edit stands for a run that wrote this value
    train(run_cli, tmp_path, mnist_dir, MODELS["LeNet5"], "--trainer.max_epochs", 2, "--ckpt_path", "last", *short)
    assert scalars(run)["val/acc_best"] == [first[0], 1.5]
    assert float(torch.load(last, weights_only=False)["val_acc_best"]) == 1.5
