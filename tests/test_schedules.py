"""Schedule fragments under configs/schedule: the learning rate actually used, step by step, against the formula."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

from lightning_cnn.cli import cli_main
from tests.helpers.runs import QUICK

CONFIGS = Path(__file__).parent.parent / "configs"
STEPS_PER_EPOCH = 10  # 960 training images of the MNIST fixture in batches of 96
LR = 0.002  # Adam's learning rate unless a test sets another


class LRRecorder(Callback):
    """The learning rate in the optimizer when each training step runs."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def learning_rates(mnist_dir: Path, tmp_path: Path, *args: object, epochs: int = 3) -> list[float]:
    cli = cli_main(
        [
            "--config",
            str(CONFIGS / "mnist" / "lenet5.yaml"),
            "--model.optimizer.init_args.lr",
            str(LR),
            *map(str, args),
            "--data.data_dir",
            str(mnist_dir),
            "--data.batch_size",
            "96",
            "--trainer.max_epochs",
            str(epochs),
            "--trainer.default_root_dir",
            str(tmp_path),
            *QUICK,
        ],  # fmt: skip
        run=False,
    )
    recorder = LRRecorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert len(recorder.lrs) == epochs * STEPS_PER_EPOCH
    return recorder.lrs


def per_epoch(lrs: list[float]) -> list[float]:
    epochs = [lrs[i : i + STEPS_PER_EPOCH] for i in range(0, len(lrs), STEPS_PER_EPOCH)]
    assert all(len(set(epoch)) == 1 for epoch in epochs), "an epoch schedule changed within an epoch"
    return [epoch[0] for epoch in epochs]


def test_warmup_cosine_peaks_after_warmup_and_ends_at_the_floor(mnist_dir, tmp_path):
    lr, total, warmup, floor = 0.01, 30, 3, 0.1
    lrs = learning_rates(
        mnist_dir, tmp_path, "--config", CONFIGS / "schedule" / "warmup_cosine.yaml",
        "--model.optimizer.init_args.lr", lr, "--model.lr_scheduler.init_args.warmup_steps", 0.1,
        "--model.lr_scheduler.init_args.min_lr_ratio", floor,
    )  # fmt: skip
    cosine = [0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - 1 - warmup))) for step in range(total)]
    expected = [lr * (step / warmup if step < warmup else floor + (1 - floor) * cosine[step]) for step in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert max(lrs) == pytest.approx(lr) and lrs.index(max(lrs)) == warmup
    assert lrs[-1] == pytest.approx(floor * lr)


def test_one_cycle_takes_its_length_from_the_trainer(mnist_dir, tmp_path):
    max_lr = 0.01
    lrs = learning_rates(mnist_dir, tmp_path, "--config", CONFIGS / "schedule" / "onecycle.yaml")
    assert lrs[0] == pytest.approx(max_lr / 25)
    peak = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(max_lr, rel=1e-3) and abs(peak - 0.3 * 30) <= 1
    assert lrs[-1] == pytest.approx(max_lr / 25 / 1e4, rel=1e-2)


def test_step_multistep_and_cosine_change_once_per_epoch(mnist_dir, tmp_path):
    lr = LR
    step = learning_rates(
        mnist_dir, tmp_path / "step", "--config", CONFIGS / "schedule" / "step.yaml",
        "--model.lr_scheduler.init_args.step_size", 1, "--model.lr_scheduler.init_args.gamma", 0.5,
    )  # fmt: skip
    assert per_epoch(step) == pytest.approx([lr, lr / 2, lr / 4])
    multistep = learning_rates(
        mnist_dir, tmp_path / "multistep", "--config", CONFIGS / "schedule" / "multistep.yaml",
        "--model.lr_scheduler.init_args.milestones", "[2]",
    )  # fmt: skip
    assert per_epoch(multistep) == pytest.approx([lr, lr, lr / 10])
    cosine = learning_rates(
        mnist_dir, tmp_path / "cosine", "--config", CONFIGS / "schedule" / "cosine.yaml",
        "--model.lr_scheduler.init_args.T_max", 3,
    )  # fmt: skip
    assert per_epoch(cosine) == pytest.approx([lr * 0.5 * (1 + math.cos(math.pi * e / 3)) for e in range(3)])


def test_plateau_reduces_after_patience_epochs_without_improvement(mnist_dir, tmp_path):
    # SGD with a tiny learning rate: val/loss cannot improve by the 1 % threshold, so after the first
    # epoch sets the best value, patience=1 bad epoch is tolerated and the second (epoch 2) cuts the LR.
    lrs = learning_rates(
        mnist_dir, tmp_path, "--config", CONFIGS / "schedule" / "plateau.yaml",
        "--model.optimizer", "torch.optim.SGD", "--model.optimizer.init_args.lr", 1e-5,
        "--model.lr_scheduler.init_args.patience", 1, "--model.lr_scheduler.init_args.threshold", 0.01, epochs=5,
    )  # fmt: skip
    assert per_epoch(lrs) == pytest.approx([1e-5, 1e-5, 1e-5, 1e-6, 1e-6])


def test_plateau_keeps_the_rate_while_the_metric_improves(mnist_dir, tmp_path):
    lrs = learning_rates(mnist_dir, tmp_path, "--config", CONFIGS / "schedule" / "plateau.yaml", epochs=3)
    assert per_epoch(lrs) == pytest.approx([LR] * 3)


def test_plateau_works_when_validation_skips_epochs(mnist_dir, tmp_path):
    lrs = learning_rates(
        mnist_dir, tmp_path, "--config", CONFIGS / "schedule" / "plateau.yaml",
        "--trainer.check_val_every_n_epoch", 2, epochs=4,
    )  # fmt: skip
    assert len(per_epoch(lrs)) == 4
