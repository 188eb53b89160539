"""Resume never touches another run: a run without a checkpoint is refused with what to do, a run held by another
process is refused before anything is written, runs without a logger get their own folders, and the SIGTERM
advice names only checkpoints that exist."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lightning_cnn.run_folder import LOCK_FILE, lock_run, release_runs, resolve_checkpoint
from lightning_cnn.training.callbacks import sigterm_advice
from tests.helpers.runs import QUICK

# a run of two batches of 16 images and one validation batch: what these tests check does not need more
SHORT = [
    *QUICK, "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--data.batch_size", "16",
    "--trainer.num_sanity_val_steps", "0", "--preview.num_images", "0", "--report.num_images", "0",
]  # fmt: skip


def tiny_run(run_cli, root: Path, mnist_dir: Path) -> Path:
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 1,
                        "--trainer.default_root_dir", root, *SHORT)  # fmt: skip
    assert code == 0, err
    return root / "lightning_logs" / "version_0"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_resuming_a_run_killed_before_its_first_checkpoint_fails_and_never_touches_another_run(
    run_cli, mnist_dir, tmp_path
):
    other = tiny_run(run_cli, tmp_path, mnist_dir)
    # what a second run killed (SIGKILL) after writing its config and before its first epoch ended leaves behind
    killed = other.parent / "version_1"
    killed.mkdir()
    shutil.copy(other / "config.yaml", killed / "config.yaml")
    before = snapshot(other)

    code, err = run_cli("fit", "--config", killed / "config.yaml", "--ckpt_path", "last")
    assert code == 2, err
    (line,) = error_lines(err)
    assert str(killed) in line and "has no checkpoint yet" in line and "without --ckpt_path" in line, line
    assert "Traceback" not in err and str(other) not in err
    assert snapshot(other) == before
    assert sorted(p.name for p in other.parent.iterdir()) == ["version_0", "version_1"]
    assert sorted(p.name for p in killed.iterdir()) == ["config.yaml"]


def test_a_second_process_resuming_a_held_run_is_refused_before_writing_and_the_lock_dies_with_its_holder(
    run_cli, mnist_dir, tmp_path
):
    run = tiny_run(run_cli, tmp_path, mnist_dir)
    holder = subprocess.Popen(  # another process holding the run, as a training one does
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a');"
         " fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(300)", str(run / LOCK_FILE)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(run)
        resume = ("fit", "--config", run / "config.yaml", "--ckpt_path", "last", "--trainer.max_epochs", 2, *SHORT)
        code, err = run_cli(*resume)
        assert code == 1, err
        (line,) = error_lines(err)
        assert f"{run} is in use by another process" in line, line
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()
    lock_run(run)  # the holder's end released the lock
    release_runs()


def test_runs_without_a_logger_get_their_own_folders_and_resume_in_them(run_cli, mnist_dir, tmp_path):
    fit = ("fit", "--data.data_dir", mnist_dir, "--trainer.logger", "false", "--trainer.default_root_dir", tmp_path)
    for _ in range(2):
        code, err = run_cli(*fit, "--trainer.max_epochs", 1, *SHORT)
        assert code == 0, err
    runs = tmp_path / "lightning_logs"
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", "version_1"]
    assert not (tmp_path / "config.yaml").exists() and not (tmp_path / "checkpoints").exists()
    first = snapshot(runs / "version_0")

    code, err = run_cli(*fit, "--trainer.max_epochs", 2, "--ckpt_path", "last", *SHORT)
    assert code == 0, err
    assert snapshot(runs / "version_0") == first  # the newest run was resumed, in its own folder
    assert (runs / "version_1" / "config_resumed_1.yaml").is_file()
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", "version_1"]


def test_sigterm_advice_names_only_checkpoints_that_exist(tmp_path):
    trainer = SimpleNamespace(current_epoch=0, global_step=5, log_dir=str(tmp_path))
    interrupted, last = tmp_path / "interrupted.ckpt", tmp_path / "last.ckpt"
    advice = sigterm_advice(trainer, str(interrupted), str(last))
    assert "no checkpoint was saved" in advice and "without --ckpt_path" in advice
    assert "ckpt_path last" not in advice and str(interrupted) not in advice

    interrupted.write_bytes(b"")
    advice = sigterm_advice(trainer, str(interrupted), str(last))
    assert f"--ckpt_path {interrupted}" in advice and "ckpt_path last" not in advice

    last.write_bytes(b"")
    advice = sigterm_advice(trainer, str(interrupted), str(last))
    assert "--ckpt_path last" in advice and f"--config {tmp_path / 'config.yaml'}" in advice


def test_a_copied_run_goes_on_in_its_copy_and_never_touches_the_original(run_cli, mnist_dir, tmp_path):
    original = tiny_run(run_cli, tmp_path / "a", mnist_dir)
    copy = tmp_path / "b" / "lightning_logs" / "version_0"
    shutil.copytree(original, copy)
    before = snapshot(original)
    # the copy's config.yaml still names the original's root and its last.ckpt the original's best checkpoint
    code, err = run_cli("fit", "--config", copy / "config.yaml", "--ckpt_path", "last", "--trainer.max_epochs", 2)
    assert code == 0, err
    assert (copy / "config_resumed_1.yaml").is_file()
    assert torch.load(copy / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1
    assert not list((copy / "checkpoints").glob("last-v*.ckpt"))  # last.ckpt carried on, no second 'last'
    assert snapshot(original) == before and [p.name for p in original.parent.iterdir()] == ["version_0"]
    assert resolve_checkpoint(copy).parent == copy / "checkpoints"  # the copy's own best checkpoint


@pytest.mark.parametrize("ckpt_path", ["best", "the run folder"])
def test_test_and_predict_write_into_the_folder_of_the_run_they_evaluate(run_cli, mnist_dir, tmp_path, ckpt_path):
    run = tiny_run(run_cli, tmp_path, mnist_dir)
    ckpt = run if ckpt_path == "the run folder" else ckpt_path
    for command in ("test", "predict"):
        code, err = run_cli(command, "--config", run / "config.yaml", "--ckpt_path", ckpt,
                            "--trainer.limit_test_batches", 1, "--trainer.limit_predict_batches", 1)  # fmt: skip
        assert code == 0, err
    assert [p.name for p in run.parent.iterdir()] == ["version_0"]
    assert {"metrics.json", "predictions.csv", "config_test_1.yaml", "config_predict_1.yaml"} <= {
        p.name for p in run.iterdir()
    }


def test_resuming_with_other_model_or_data_options_says_which(run_cli, mnist_dir, tmp_path, caplog):
    run = tiny_run(run_cli, tmp_path, mnist_dir)
    caplog.set_level(logging.INFO)
    resume = ("fit", "--config", run / "config.yaml", "--ckpt_path", "last")
    assert run_cli(*resume, "--trainer.max_epochs", 2)[0] == 0
    assert "other than those its weights were trained with" not in caplog.text  # more epochs: nothing to say
    code, err = run_cli(*resume, "--trainer.max_epochs", 3, "--model.activation", "tanh", "--data.batch_size", 8)
    assert code == 0, err
    note = next(r.getMessage() for r in caplog.records if "other than those its weights" in r.getMessage())
    assert note.endswith("model.activation: 'relu' → 'tanh'; data.batch_size: 16 → 8"), note
