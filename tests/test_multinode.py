"""Several machines, proven on one: two "nodes" of one process each on localhost (gloo), started by torchrun or
with the variables SLURM's ``srun`` sets, give the validation metrics of one process, exactly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.rank_zero import rank_zero_only as fabric_rank_zero_only
from lightning_utilities.core.rank_zero import rank_zero_only as utilities_rank_zero_only

from lightning_cnn.cli import cli_main
from tests.helpers.runs import QUICK, fit_tiny_run, scalars

VAL_IMAGES = 119  # odd: a padding sampler would count an image twice on one of the two nodes
EVAL_TAGS = ("val/acc", "val/acc_top5", "val/f1")
TWO_NODES = ["--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_two_nodes(commands: list[list[str]], envs: list[dict[str, str]]) -> None:
    """Start one process per node, concurrently, and wait for both; fail with the stderr of one that failed."""
    procs = [
        subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1", **env}, stderr=subprocess.PIPE, text=True)
        for cmd, env in zip(commands, envs, strict=True)
    ]
    try:
        errors = [proc.communicate(timeout=300)[1] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, err in zip(procs, errors, strict=True):
        assert proc.returncode == 0, err[-3000:]


def single_process_validation(run: Path, root: Path) -> dict[str, list[float]]:
    """val metrics of one process on the run's last checkpoint, with the run's own config."""
    cli_main(
        ["validate", "--config", str(run / "config.yaml"), "--trainer.strategy", "auto", "--trainer.devices", "1",
         "--trainer.num_nodes", "1", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
         "--trainer.default_root_dir", str(root)]
    )  # fmt: skip
    return scalars(root / "lightning_logs" / "version_0")


def assert_same_validation(multi: dict[str, list[float]], single: dict[str, list[float]]) -> None:
    for tag in EVAL_TAGS:
        assert multi[tag][-1] == single[tag][-1], tag
    assert multi["val/loss"][-1] == pytest.approx(single["val/loss"][-1], abs=1e-5)  # float sums in another order


def test_torchrun_two_nodes_train_and_validate_as_one_process(mnist_dir, tmp_path):
    root, port = tmp_path / "nodes", free_port()
    fit = [
        "-m", "lightning_cnn", "fit", "--model", "ConvNet", "--model.batch_norm", "true", "--data.data_dir",
        str(mnist_dir), "--data.eval_batch_size", "25", *QUICK, "--data.val_size", str(VAL_IMAGES), *TWO_NODES,
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--seed_everything", "1",
        "--model.optimizer.lr", "0.0003", "--trainer.default_root_dir", str(root), "--preview.num_images", "0",
    ]  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
    address = ["--master_addr", "127.0.0.1", "--master_port", str(port)]
    commands = [[*torchrun, "--node_rank", str(rank), *address, *fit] for rank in (0, 1)]
    run_two_nodes(commands, [{}, {}])

    run = root / "lightning_logs" / "version_0"
    assert sorted(p.name for p in (root / "lightning_logs").iterdir()) == ["version_0"]  # node 0 alone writes
    multi = scalars(run)
    assert 0 < multi["val/acc"][-1] < 1
    assert_same_validation(multi, single_process_validation(run, tmp_path / "single"))


def slurm_variables(rank: int, port: int) -> dict[str, str]:
    """What ``srun --nodes 2 --ntasks-per-node 1`` sets for task ``rank`` (one task per node), and the address."""
    return {
        "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "2", "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": "0", "SLURM_NODEID": str(rank), "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "4242",
        "SLURM_NODELIST": "127.0.0.1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
    }  # fmt: skip


def test_slurm_variables_set_the_ranks_and_the_world(monkeypatch, mnist_dir, tmp_path):
    for name, value in slurm_variables(rank=1, port=free_port()).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SLURM_NTASKS", "4")  # 2 nodes × 2 tasks: this process is task 3, the second on node 1
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.delenv("MASTER_PORT")
    for decorator in (fabric_rank_zero_only, utilities_rank_zero_only):  # the trainer sets rank 3 process-wide
        monkeypatch.setattr(decorator, "rank", getattr(decorator, "rank", 0))
    cli = cli_main(
        ["--model", "LeNet5", "--data.data_dir", str(mnist_dir), *QUICK, "--trainer.num_nodes", "2",
         "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.default_root_dir", str(tmp_path)],
        run=False,
    )  # fmt: skip
    environment = cli.trainer.strategy.cluster_environment
    assert isinstance(environment, SLURMEnvironment)
    assert (cli.trainer.world_size, cli.trainer.global_rank, cli.trainer.local_rank, cli.trainer.node_rank) == (
        4,
        3,
        1,
        1,
    )
    assert environment.main_address == "127.0.0.1" and environment.main_port == 15000 + 4242  # from the job id


def test_two_slurm_tasks_validate_as_one_process(mnist_dir, tmp_path):
    data = ["--data", "MNISTDataModule", "--data.data_dir", str(mnist_dir), "--data.val_size", str(VAL_IMAGES)]
    run = fit_tiny_run(tmp_path / "trained", data)
    root, port = tmp_path / "slurm", free_port()
    validate = [
        sys.executable, "-m", "lightning_cnn", "validate", "--config", str(run / "config.yaml"), *TWO_NODES,
        "--data.eval_batch_size", "25", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
        "--trainer.default_root_dir", str(root),
    ]  # fmt: skip
    run_two_nodes([validate, validate], [slurm_variables(rank, port) for rank in (0, 1)])
    multi = scalars(root / "lightning_logs" / "version_0")
    assert_same_validation(multi, single_process_validation(run, tmp_path / "single"))
