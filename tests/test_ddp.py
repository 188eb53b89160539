"""DDP with 2 processes on the CPU (gloo): metrics equal a single process on the same weights and data,
exactly, on splits that do not divide evenly between the processes; only rank 0 writes the run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.runs import QUICK, macro_f1, scalars
from tests.helpers.writers import synthetic_images, write_idx, write_sha256sums

CONFIGS = Path(__file__).parent.parent / "configs"
TEST_IMAGES, VAL_IMAGES = 301, 119  # odd: Lightning's padding sampler would count an image twice


@pytest.fixture(scope="module")
def odd_mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MNIST of 600 training and 301 test images in the official layout."""
    root = tmp_path_factory.mktemp("odd_mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n, seed in (("train", 600, 2), ("t10k", TEST_IMAGES, 3)):
        images, labels = synthetic_images(n, (28, 28, 1), seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images[..., 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    write_sha256sums(root)
    return root


def test_ddp_metrics_equal_one_process_exactly_and_only_rank_zero_writes(run_cli, odd_mnist_dir, tmp_path):
    ddp_root = tmp_path / "ddp"
    # per process 151 / 150 test images: 4 / 3 batches of up to 50; batch norm buffers must not hang DDP
    data = ["--data.data_dir", str(odd_mnist_dir), "--data.eval_batch_size", "50"]
    command = [
        sys.executable, "-m", "lightning_cnn", "fit", "--config", str(CONFIGS / "trainer" / "ddp_cpu.yaml"),
        "--model", "ConvNet", "--model.batch_norm", "true", *data, "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "1", "--model.optimizer.lr", "0.0003", "--seed_everything", "1",
        "--test_after_fit", "true", "--trainer.default_root_dir", str(ddp_root), *QUICK, "--data.val_size",
        str(VAL_IMAGES),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    runs = sorted(p.name for p in (ddp_root / "lightning_logs").iterdir())
    assert runs == ["version_0"]
    run = ddp_root / "lightning_logs" / "version_0"
    assert len(list(run.glob("events.out.tfevents.*"))) == 2  # fit and test, from rank 0 only
    checkpoints = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints
    ddp, ddp_report = scalars(run), json.loads((run / "metrics.json").read_text())

    single = {}
    for subcommand in ("validate", "test"):
        root = tmp_path / subcommand
        code, err = run_cli(
            subcommand, "--config", run / "config.yaml", "--trainer.strategy", "auto", "--trainer.devices", 1,
            "--ckpt_path", run / "checkpoints" / "last.ckpt", "--trainer.default_root_dir", root,
        )  # fmt: skip
        assert code == 0, err
        single.update(scalars(root / "lightning_logs" / "version_0"))
    single_report = json.loads((tmp_path / "test" / "lightning_logs" / "version_0" / "metrics.json").read_text())

    assert ddp_report["num_images"] == single_report["num_images"] == TEST_IMAGES
    assert ddp_report["test/acc"] < 1  # one step of a slow learner: mistakes make the comparison telling
    assert ddp_report["test/f1"] == pytest.approx(macro_f1(torch.tensor(ddp_report["confusion_matrix"])), abs=1e-6)
    assert ddp_report["confusion_matrix"] == single_report["confusion_matrix"]
    assert ddp_report["per_class_acc"] == single_report["per_class_acc"]
    for tag in ("val/acc", "val/acc_top5", "val/f1", "test/acc", "test/acc_top5", "test/f1"):
        assert ddp[tag][-1] == single[tag][-1], tag
    for tag in ("test/acc", "test/acc_top5", "test/f1"):
        assert ddp_report[tag] == single_report[tag], tag
    for tag in ("val/loss", "test/loss"):  # sums of floats in another order
        assert ddp[tag][-1] == pytest.approx(single[tag][-1], abs=1e-5), tag
    for tag in ("test/ece", "test/mce"):  # every process's confidences gathered: the whole split's bins
        assert ddp_report[tag] == pytest.approx(single_report[tag], abs=1e-6), tag


def test_ema_trains_under_ddp(odd_mnist_dir, tmp_path):
    """Weight averaging copies the model; the copy shares the optimizer factory the CLI built, which under DDP holds
    locks that cannot be copied."""
    command = [
        sys.executable, "-m", "lightning_cnn", "fit", "--config", str(CONFIGS / "trainer" / "ddp_cpu.yaml"),
        "--config", str(CONFIGS / "callbacks" / "ema.yaml"), "--data.data_dir", str(odd_mnist_dir),
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.default_root_dir", str(tmp_path), *QUICK,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()
