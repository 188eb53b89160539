"""Faults: killed runs resume exactly, SIGTERM saves, checkpoints are whole or absent, divergence stops with
the last good checkpoint kept, concurrent runs get their own folders, and corrupt data never trains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from lightning_cnn.checkpoints import verifies
from lightning_cnn.training.checkpoint_io import AtomicCheckpointIO
from lightning_cnn.training.loggers import RunLogger
from tests.helpers.runs import QUICK, scalars

ROOT = Path(__file__).parent.parent
DETERMINISTIC = ROOT / "configs" / "trainer" / "deterministic.yaml"


def fit_process(mnist_dir: Path, root: Path, *args: object, wait: bool = True):
    """``python -m lightning_cnn fit`` in a child process (a real process is what signals kill)."""
    command = [
        sys.executable, "-m", "lightning_cnn", "fit", "--config", str(DETERMINISTIC), "--data.data_dir", str(mnist_dir),
        "--trainer.max_epochs", "3", "--data.batch_size", "64", "--trainer.default_root_dir", str(root),
        *QUICK, *map(str, args),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # a runner started in the background (`pytest &` in a script) passes SIGINT on as ignored, and Python then never
    # raises KeyboardInterrupt: the child gets the default disposition a user's terminal gives it
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    if not wait:
        return child
    _, err = child.communicate(timeout=300)
    return child.returncode, err


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]


def test_sigkill_mid_epoch_then_ckpt_path_last_ends_like_an_uninterrupted_run(mnist_dir, tmp_path):
    code, err = fit_process(mnist_dir, tmp_path / "straight")
    assert code == 0, err
    code, err = fit_process(mnist_dir, tmp_path / "killed", "--trainer.callbacks+=tests.helpers.faults.SignalAt")
    assert code == -9, err  # SIGKILL in epoch 1, batch 3
    run = tmp_path / "killed" / "lightning_logs" / "version_0"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    assert not list(run.glob("checkpoints/*.tmp"))
    assert len(scalars(run)["val/acc"]) == 1  # the killed part's TensorBoard log is readable

    code, err = fit_process(mnist_dir, tmp_path / "killed", "--ckpt_path", "last")
    assert code == 0, err
    straight = tmp_path / "straight" / "lightning_logs" / "version_0"
    a, b = weights(straight / "checkpoints" / "last.ckpt"), weights(run / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert scalars(straight)["val/acc"] == scalars(run)["val/acc"][-3:]


def test_sigterm_saves_a_checkpoint_and_exits_non_zero(mnist_dir, tmp_path):
    code, err = fit_process(mnist_dir, tmp_path, "--trainer.callbacks+=tests.helpers.faults.SignalAt",
                            "--trainer.callbacks.init_args.signal_name", "SIGTERM")  # fmt: skip
    assert code == 143, err
    assert "terminated by SIGTERM" in err and "Traceback" not in err
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    interrupted = torch.load(checkpoints / "interrupted.ckpt", weights_only=False)
    assert (
        interrupted["epoch"] == 1 and interrupted["global_step"] > torch.load(checkpoints / "last.ckpt")["global_step"]
    )
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["epoch"] == 0  # still the last whole epoch


def test_ctrl_c_in_training_is_one_line_exit_130_and_keeps_the_run(mnist_dir, tmp_path):
    code, err = fit_process(mnist_dir, tmp_path, "--trainer.callbacks+=tests.helpers.faults.SignalAt",
                            "--trainer.callbacks.init_args.signal_name", "SIGINT")  # fmt: skip
    assert code == 130, err
    assert err.rstrip().endswith("interrupted") and "Traceback" not in err
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 0  # the last whole epoch, for --ckpt_path last


def test_a_checkpoint_write_cut_short_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 1}, path)

    def cut_short(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", cut_short)
    with pytest.raises(OSError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]  # no partial file
    assert verifies(path)  # and its record still accepts it


def test_a_diverging_run_stops_naming_step_and_lr_and_keeps_the_last_good_checkpoint(run_cli, mnist_dir, tmp_path):
    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 3, "--trainer.default_root_dir", tmp_path,
        "--model.optimizer", "SGD", "--model.optimizer.lr", 0.01,
        "--trainer.callbacks+=tests.helpers.faults.LearningRateAt",
        *QUICK,
    )  # fmt: skip
    assert code == 1
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "train/loss became" in line and "at epoch 1, step" in line and "learning rate 1e+30" in line, line
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    assert f"the last good checkpoint is {checkpoints / 'last.ckpt'}" in line
    kept = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert kept["epoch"] == 0 and all(torch.isfinite(v).all() for v in kept["state_dict"].values())
    assert all(torch.load(p, weights_only=False)["epoch"] == 0 for p in checkpoints.glob("*.ckpt"))


def test_loggers_that_pick_the_same_number_still_get_distinct_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(TensorBoardLogger, "_get_next_version", lambda self: 0)  # both listed an empty folder
    first, second = RunLogger(save_dir=tmp_path), RunLogger(save_dir=tmp_path)
    assert (first.version, second.version) == (0, 1)
    assert sorted(p.name for p in (tmp_path / "lightning_logs").iterdir()) == ["version_0", "version_1"]


def test_two_runs_started_together_keep_their_own_folders(mnist_dir, tmp_path):
    children = [fit_process(mnist_dir, tmp_path, "--trainer.max_epochs", 1, wait=False) for _ in range(2)]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
    runs = sorted((tmp_path / "lightning_logs").iterdir())
    assert [run.name for run in runs] == ["version_0", "version_1"]
    for run in runs:
        assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
        assert len(list(run.glob("events.out.tfevents.*"))) == 1 and "val/acc" in scalars(run)


@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_a_damaged_dataset_file_is_named_and_training_never_starts(run_cli, mnist_dir, tmp_path, damage):
    data = tmp_path / "data"
    for path in mnist_dir.rglob("*"):
        if path.is_file():
            (data / path.relative_to(mnist_dir)).parent.mkdir(parents=True, exist_ok=True)
            (data / path.relative_to(mnist_dir)).write_bytes(path.read_bytes())
    broken = data / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    content = broken.read_bytes()
    broken.write_bytes(content[: len(content) // 2] if damage == "truncate" else content[:-9] + b"x" + content[-8:])
    code, err = run_cli("fit", "--data.data_dir", data, "--trainer.default_root_dir", tmp_path / "runs", *QUICK)
    assert code == 1
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert str(broken) in line and "truncated or altered" in line and "data.download true" in line, line
    assert not (tmp_path / "runs" / "lightning_logs").exists() or not any(
        (tmp_path / "runs" / "lightning_logs").iterdir()
    )


def test_official_file_names_are_checked_against_torchvision_md5(run_cli, mnist_dir, tmp_path):
    data = tmp_path / "data"
    for path in (mnist_dir / "MNIST" / "raw").iterdir():  # the synthetic files without their SHA256SUMS
        (data / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
        (data / "MNIST" / "raw" / path.name).write_bytes(path.read_bytes())
    code, err = run_cli("fit", "--data.data_dir", data, "--trainer.default_root_dir", tmp_path / "runs", *QUICK)
    assert code == 1
    assert "does not match the official checksum (md5)" in err
