"""Weight averaging: the SWA fragment's average reaches the last checkpoint, which ``test`` loads; ``average``
writes the exact mean of a run's last epoch checkpoints as a checkpoint every command takes, and refuses a run
without enough of them in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_cnn.checkpoints import read_checkpoint, verifies
from lightning_cnn.cli import cli_main
from tests.helpers.runs import QUICK

CONFIGS = Path(__file__).parent.parent / "configs"
RECIPE = CONFIGS / "mnist" / "lenet5.yaml"


def fit(root: Path, mnist_dir: Path, epochs: int, *extra: str) -> Path:
    """A LeNet-5 run of ``epochs`` epochs of 3 batches on the tiny MNIST; its run folder."""
    cli_main(
        [
            "fit", "--config", str(RECIPE), *extra, "--data.data_dir", str(mnist_dir), *QUICK,
            "--trainer.max_epochs", str(epochs), "--trainer.limit_train_batches", "3",
            "--trainer.limit_val_batches", "2", "--trainer.default_root_dir", str(root), "--preview.num_images", "0",
            "--test_after_fit", "false",
        ]
    )  # fmt: skip
    return root / "lightning_logs" / "version_0"


@pytest.fixture(scope="module")
def every_epoch_run(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-epoch run that kept one checkpoint per epoch."""
    return fit(tmp_path_factory.mktemp("average"), mnist_dir, 3, "--checkpoint.save_top_k", "-1")


def test_swa_checkpoint_holds_the_average_and_loads_for_test(mnist_dir, run_cli, tmp_path):
    run = fit(tmp_path, mnist_dir, 2, "--config", str(CONFIGS / "callbacks" / "swa.yaml"))
    last = read_checkpoint(run / "checkpoints" / "last.ckpt")
    average = last["callbacks"]["SavedStochasticWeightAveraging"]["average_model_state"]
    for name, value in last["state_dict"].items():
        assert torch.equal(value, average[name]), name  # LeNet-5 has no batch norm: every entry is the average
    code, err = run_cli(
        "test", "--config", run / "config.yaml", "--ckpt_path", "last", "--data.data_dir", mnist_dir, *QUICK
    )
    assert code == 0, err


def test_average_is_the_exact_mean_and_test_takes_it(every_epoch_run, mnist_dir, run_cli):
    code, err = run_cli("average", every_epoch_run, "--last", "2")
    assert code == 0, err
    folder = every_epoch_run / "checkpoints"
    target = folder / "average_last2.ckpt"
    assert target.is_file() and (folder / "average_last2.ckpt.sha256").is_file() and verifies(target)
    states = [read_checkpoint(next(folder.glob(f"epoch{e:03d}-*.ckpt")))["state_dict"] for e in (1, 2)]
    averaged = read_checkpoint(target)
    for name, value in averaged["state_dict"].items():
        if value.is_floating_point():
            expected = ((states[0][name].double() + states[1][name].double()) / 2).to(value.dtype)
            assert torch.equal(value, expected), name
        else:
            assert torch.equal(value, states[1][name]), name
    assert averaged["hyper_parameters"] == read_checkpoint(folder / "last.ckpt")["hyper_parameters"]
    code, err = run_cli(
        "test", "--config", every_epoch_run / "config.yaml", "--ckpt_path", target, "--data.data_dir", mnist_dir,
        *QUICK,
    )  # fmt: skip
    assert code == 0, err


def test_too_few_epoch_checkpoints_is_one_line_naming_the_option(every_epoch_run, run_cli):
    code, err = run_cli("average", every_epoch_run, "--last", "4")
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("error:")
    assert "holds 3 epoch checkpoint(s)" in err and "--checkpoint.save_top_k -1" in err


def test_a_folder_that_is_not_a_run_is_one_line(run_cli, tmp_path):
    code, err = run_cli("average", tmp_path, "--last", "2")
    assert code == 2
    assert err.strip().count("\n") == 0 and "is not a run folder" in err


def test_a_run_resumed_while_averaging_ends_with_the_same_average(mnist_dir, tmp_path):
    swa = ("--config", str(CONFIGS / "callbacks" / "swa.yaml"), "--checkpoint.save_top_k", "-1")
    run = fit(tmp_path, mnist_dir, 4, *swa)
    folder = run / "checkpoints"
    whole = read_checkpoint(folder / "last.ckpt")["state_dict"]
    # the average starts at epoch 2 (0.75 × 4 epochs): epoch 2's checkpoint holds it half done
    resumed_from = next(folder.glob("epoch002-*.ckpt"))
    cli_main(["fit", "--config", str(run / "config.yaml"), "--ckpt_path", str(resumed_from)])
    resumed = read_checkpoint(folder / "last.ckpt")["state_dict"]
    assert all(torch.equal(resumed[name], value) for name, value in whole.items())
