"""The command line end to end: what a run writes, re-running a saved config, any model on any dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch

from lightning_cnn.cli import cli_main
from lightning_cnn.data import MNISTDataModule
from lightning_cnn.models.base import ImageClassifier
from lightning_cnn.tools import TOOLS
from lightning_cnn.training.callbacks import BATCH_HOOKS
from tests.helpers.runs import QUICK, scalars


def test_fit_writes_config_checkpoints_and_tensorboard_events(run_cli, mnist_dir, tmp_path):
    code, err = run_cli(
        "fit", "--model", "LeNet5", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 2,
        "--trainer.default_root_dir", tmp_path, "--test_after_fit", "true", *QUICK,
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    assert (run / "config.yaml").is_file()
    checkpoints = {p.name for p in (run / "checkpoints").glob("*.ckpt")}
    assert "last.ckpt" in checkpoints
    tags = scalars(run)
    (best,) = [name for name in checkpoints if name.startswith("epoch")]  # the best val/acc epoch's
    assert tags["val/acc"][int(best[len("epoch") : len("epoch000")])] == max(tags["val/acc"]), (best, tags["val/acc"])
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "test/loss"):
        assert tag in tags, sorted(tags)
    assert len(tags["val/acc"]) == 2  # one point per epoch
    assert any(tag.startswith("lr-") for tag in tags), sorted(tags)
    assert tags["test/acc"][-1] > 0.5  # the tiny synthetic set is easy to learn
    assert not (tmp_path / "checkpoints").exists()  # nothing outside the run folder


def test_saved_config_reruns_the_same_experiment(run_cli, mnist_dir, tmp_path):
    first = ("fit", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 1, "--trainer.default_root_dir", tmp_path)
    assert run_cli(*first, "--seed_everything", 7, *QUICK)[0] == 0
    saved = tmp_path / "lightning_logs" / "version_0" / "config.yaml"
    code, err = run_cli("fit", "--config", saved)
    assert code == 0, err
    second = tmp_path / "lightning_logs" / "version_1"
    assert (second / "config.yaml").read_text() == saved.read_text()
    runs = [scalars(tmp_path / "lightning_logs" / v) for v in ("version_0", "version_1")]
    assert runs[0]["val/acc"] == runs[1]["val/acc"]
    assert runs[0]["val/loss"] == runs[1]["val/loss"]


def test_default_root_dir_holds_everything_a_run_writes(run_cli, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "elsewhere"
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 1,
                        "--trainer.default_root_dir", root, *QUICK)  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]
    assert (root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_simple_cnn_trains_on_cifar10_batches_without_shape_edits(run_cli, cifar10_dir, tmp_path):
    code, err = run_cli(
        "fit", "--model", "SimpleCNN", "--data", "CIFAR10DataModule", "--data.data_dir", cifar10_dir,
        "--data.val_size", 50, "--trainer.max_epochs", 1, "--trainer.default_root_dir", tmp_path,
        "--test_after_fit", "true", *QUICK,
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    hparams = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["hyper_parameters"]
    assert tuple(hparams["input_shape"]) == (3, 32, 32)
    assert hparams["num_classes"] == 10
    assert "test/acc" in scalars(run)


def test_fast_dev_run_leaves_no_files(run_cli, mnist_dir, tmp_path):
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, "--trainer.fast_dev_run", "true",
                        "--trainer.default_root_dir", tmp_path, *QUICK)  # fmt: skip
    assert code == 0, err
    assert list(tmp_path.iterdir()) == []


def test_a_run_without_logger_still_saves_checkpoints_and_its_config(run_cli, mnist_dir, tmp_path):
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 1, "--trainer.logger", "false",
                        "--trainer.default_root_dir", tmp_path, "--test_after_fit", "true", *QUICK)  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"  # a run folder like any other run's
    assert (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_validate_and_test_a_checkpoint(run_cli, mnist_dir, tmp_path):
    common = ("--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *QUICK)
    assert run_cli("fit", "--trainer.max_epochs", 1, *common)[0] == 0
    ckpt = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    for subcommand in ("validate", "test"):
        code, err = run_cli(subcommand, "--ckpt_path", ckpt, *common)
        assert code == 0, err


def test_console_entry_points_start():
    script = Path(sys.executable).parent / "lightning-cnn"
    for command in ([sys.executable, "-m", "lightning_cnn", "--help"], [str(script), "fit", "--help"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "fit" in done.stdout


def test_train_loss_is_the_mean_of_the_steps_since_the_last_point(run_cli, mnist_dir, tmp_path):
    """With ``log_every_n_steps: 4`` each train/loss point averages four steps, not one sampled step."""
    runs = {}
    for every in (1, 4):
        code, err = run_cli(
            "fit", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 1, "--trainer.limit_train_batches", 12,
            "--trainer.limit_val_batches", 1, "--seed_everything", 3,
            "--trainer.default_root_dir", tmp_path / str(every), *QUICK,
            "--trainer.log_every_n_steps", every, "--data.batch_size", 32,
        )  # fmt: skip
        assert code == 0, err
        runs[every] = scalars(tmp_path / str(every) / "lightning_logs" / "version_0")["train/loss"]
    assert len(runs[1]) == 12 and len(runs[4]) == 3
    windows = [sum(runs[1][i : i + 4]) / 4 for i in range(0, 12, 4)]
    assert runs[4] == pytest.approx(windows, rel=1e-5)


@pytest.mark.parametrize(
    ("schedule", "test_ckpt", "tested"),
    [
        (["--model.lr_scheduler", "lightning_cnn.schedulers.WarmupCosineLR"], "auto", "last.ckpt"),  # annealed to 0
        ([], "auto", "epoch"),  # a constant learning rate: the best val/acc epoch
    ],
)
def test_test_after_fit_tests_the_checkpoint_test_ckpt_chooses(
    run_cli, mnist_dir, tmp_path, schedule, test_ckpt, tested
):
    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 2, "--trainer.limit_train_batches", 4,
        "--trainer.default_root_dir", tmp_path, "--test_after_fit", "true", "--test_ckpt", test_ckpt,
        "--preview.num_images", 0, *schedule, *QUICK,
    )  # fmt: skip
    assert code == 0, err
    metrics = json.loads((tmp_path / "lightning_logs" / "version_0" / "metrics.json").read_text())
    assert Path(metrics["checkpoint"]).name.startswith(tested), metrics["checkpoint"]


def test_train_accuracy_counts_every_training_image_of_the_epoch(run_cli, mnist_dir, tmp_path):
    # learning rate 0: the weights stay those of the checkpoint, so train/acc must be their accuracy on the split
    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 1, "--model.optimizer.lr", 0,
        "--trainer.default_root_dir", tmp_path, "--preview.num_images", 0, "--report.enabled", "false", *QUICK,
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    model = ImageClassifier.load_from_checkpoint(run / "checkpoints" / "last.ckpt").eval()
    dm = MNISTDataModule(data_dir=str(mnist_dir), val_size=0.2)
    dm.setup("fit")
    images, labels = dm.prepare_batch((dm.train_set.images, dm.train_set.labels), train=False)
    with torch.no_grad():
        expected = (model(images).argmax(dim=1) == labels).float().mean().item()
    assert scalars(run)["train/acc"][-1] == pytest.approx(expected, abs=1e-6)


class CountsTwoBatchHooks(L.Callback):
    """A user's callback implementing two of the per-batch hooks."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def on_train_batch_end(self, *args: object) -> None:
        self.calls["on_train_batch_end"] += 1

    def on_before_backward(self, *args: object) -> None:
        self.calls["on_before_backward"] += 1


def test_callbacks_get_every_batch_hook_they_implement_and_the_no_ops_are_skipped(mnist_dir, tmp_path):
    counter = CountsTwoBatchHooks()
    cli = cli_main(
        ["fit", "--data.data_dir", str(mnist_dir), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "5",
         "--trainer.default_root_dir", str(tmp_path), *QUICK],
        callbacks=[counter],
    )  # fmt: skip
    assert counter.calls == {"on_train_batch_end": 5, "on_before_backward": 5}
    assert counter.on_after_backward is None and counter.on_train_batch_start is None
    for callback in cli.trainer.callbacks:  # Lightning's, ours and the user's alike
        for hook in BATCH_HOOKS:
            implemented = getattr(type(callback), hook) is not getattr(L.Callback, hook)
            assert callable(getattr(callback, hook)) == implemented, (type(callback).__name__, hook)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_usage_mistake_in_any_tool_is_one_error_line_and_a_hint(run_cli, tool, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing a tool could write lands in the project
    code, err = run_cli(tool, "--no_such_option")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), err
    assert not any(tmp_path.iterdir())


def test_the_top_level_help_starts_without_torch_or_lightning():
    code = (
        "import sys\nfrom lightning_cnn.__main__ import main\nmain(['--help'])\n"
        "print(sorted(m for m in ('torch', 'lightning', 'matplotlib', 'jsonargparse') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "tools:" in done.stdout and done.stdout.strip().splitlines()[-1] == "[]"
