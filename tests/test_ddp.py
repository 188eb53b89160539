"""DDP with 2 processes on the CPU (gloo): metrics equal a single process on the same weights and data,
and only rank 0 writes the run folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import QUICK
from tests.test_cli import scalars

CONFIGS = Path(__file__).parent.parent / "configs"


def test_ddp_metrics_match_one_process_and_only_rank_zero_writes(run_cli, mnist_dir, tmp_path):
    ddp_root = tmp_path / "ddp"
    # 1,200 fixture images: 240 validation and 300 test images split evenly over the 2 processes
    command = [
        sys.executable, "-m", "lightning_cnn", "fit", "--config", str(CONFIGS / "trainer" / "ddp_cpu.yaml"),
        "--data.data_dir", str(mnist_dir), "--trainer.max_epochs", "1", "--test_after_fit", "true",
        "--trainer.default_root_dir", str(ddp_root), *QUICK,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    runs = sorted(p.name for p in (ddp_root / "lightning_logs").iterdir())
    assert runs == ["version_0"]
    run = ddp_root / "lightning_logs" / "version_0"
    assert len(list(run.glob("events.out.tfevents.*"))) == 2  # fit and test, from rank 0 only
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints
    ddp = scalars(run)

    single = {}
    for subcommand in ("validate", "test"):
        root = tmp_path / subcommand
        code, err = run_cli(
            subcommand, "--config", run / "config.yaml", "--trainer.strategy", "auto", "--trainer.devices", 1,
            "--ckpt_path", run / "checkpoints" / "last.ckpt", "--trainer.default_root_dir", root,
        )  # fmt: skip
        assert code == 0, err
        single.update(scalars(root / "lightning_logs" / "version_0"))
    for tag in ("val/acc", "val/loss", "test/acc", "test/loss"):
        assert ddp[tag][-1] == pytest.approx(single[tag][-1], abs=1e-5), tag
