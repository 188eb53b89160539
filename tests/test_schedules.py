"""Schedule fragments under configs/schedule: the learning rate actually used, step by step, against the formula."""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.optim.lr_scheduler import OneCycleLR

from lightning_cnn.cli import cli_main
from lightning_cnn.internals import scheduled_lrs
from lightning_cnn.schedulers import WarmupCosineLR, build_scheduler
from tests.helpers.runs import QUICK, scalars

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


def test_cosine_takes_its_length_from_the_run(mnist_dir, tmp_path):
    cosine = learning_rates(mnist_dir, tmp_path, "--config", CONFIGS / "schedule" / "cosine.yaml", epochs=2)
    total = 2 * STEPS_PER_EPOCH
    assert cosine == pytest.approx([LR * 0.5 * (1 + math.cos(math.pi * t / (total - 1))) for t in range(total)])


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


def resumed_lrs(make, old_total: int, stop: int, new_total: int) -> tuple[list[float], list[float], str]:
    """The learning rate of every step of a run planned over ``old_total`` steps and stopped after ``stop``, then
    resumed as Lightning does (a new schedule of ``new_total`` steps, the optimizer's state, then the schedule's),
    and the lrs of an uninterrupted ``old_total``-step run; with the line the resume printed."""
    param = torch.nn.Parameter(torch.zeros(1))
    first, lrs, straight = torch.optim.Adam([param], lr=0.01), [], []
    scheduler = make(first, old_total)
    for step in range(old_total):
        straight.append(first.param_groups[0]["lr"])
        first.step()
        scheduler.step()
        if step == stop - 1:  # the checkpoint at the end of the last step trained
            lrs = list(straight)
            optimizer_state, scheduler_state = copy.deepcopy(first.state_dict()), copy.deepcopy(scheduler.state_dict())
    optimizer = torch.optim.Adam([param], lr=0.01)
    resumed = make(optimizer, new_total)
    optimizer.load_state_dict(optimizer_state)
    resumed.load_state_dict(scheduler_state)
    for _ in range(stop, new_total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        resumed.step()
    return lrs, straight, getattr(resumed, "resume_note", "")


SCHEDULES = {
    "warmup-cosine": lambda opt, total: WarmupCosineLR(opt, warmup_steps=0.1, total_steps=total),
    "one-cycle": lambda opt, total: build_scheduler(functools.partial(OneCycleLR, max_lr=0.01), opt, total),
}


def planned(make, total: int, position: float) -> float:
    """The lr a schedule planned over ``total`` steps gives at (fractional) step ``position`` of its curve."""
    scheduler = make(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.01), total)
    scheduler.last_epoch = position
    return float(scheduled_lrs(scheduler)[0])


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_a_finished_run_resumed_with_more_steps_follows_its_curve_stretched_to_the_new_length(schedule):
    make = SCHEDULES[schedule]
    lrs, straight, note = resumed_lrs(make, 20, 20, 40)
    assert len(lrs) == 40 and lrs[:20] == straight
    assert lrs[20:] == pytest.approx([planned(make, 20, t * 19 / 39) for t in range(20, 40)], rel=1e-6)
    assert min(lrs[20:-1]) > lrs[-1] == pytest.approx(straight[-1])  # not one step at the floor before the end
    assert "planned for 20 steps, the resumed run has 40; resuming at step 20" in note and "curve had ended" in note


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("new_total", [60, 30])
def test_an_interrupted_run_resumed_with_another_length_goes_on_without_a_jump(schedule, new_total):
    make = SCHEDULES[schedule]
    lrs, straight, note = resumed_lrs(make, 40, 20, new_total)
    assert len(lrs) == new_total and lrs[:20] == straight[:20]
    assert lrs[20] == pytest.approx(straight[20], rel=1e-6)  # continuous: the lr the planned run had here
    rest = [planned(make, 40, 20 + (t - 20) * 19 / (new_total - 21)) for t in range(20, new_total)]
    assert lrs[20:] == pytest.approx(rest, rel=1e-6)  # the rest of the curve, stretched or compressed
    assert lrs[-1] == pytest.approx(straight[-1], rel=1e-6) and min(lrs[20:-1]) > lrs[-1]
    assert "stretched over the" in note


def test_the_same_length_resumes_exactly():
    for make in SCHEDULES.values():
        lrs, straight, note = resumed_lrs(make, 20, 8, 20)
        assert lrs == straight and note == ""


def test_resuming_a_finished_one_cycle_run_with_more_epochs_trains_every_added_step(
    run_cli, mnist_dir, tmp_path, caplog
):
    """Through the CLI (the schedule as the parser builds it; torch's one-cycle stopped with "Tried to step")."""
    config = "onecycle.yaml"
    fit = (
        "fit", "--config", CONFIGS / "schedule" / config, "--data.data_dir", mnist_dir, "--data.batch_size", 96,
        "--trainer.default_root_dir", tmp_path, "--trainer.limit_train_batches", 3, "--trainer.limit_val_batches", 1,
        "--trainer.num_sanity_val_steps", 0, "--preview.num_images", 0, "--report.num_images", 0, *QUICK,
    )  # fmt: skip
    code, err = run_cli(*fit, "--trainer.max_epochs", 2)
    assert code == 0, err
    code, err = run_cli(*fit, "--trainer.max_epochs", 4, "--ckpt_path", "last")
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    lrs = scalars(run)["lr-Adam"]
    assert len(lrs) == 12 and lrs[6] > 0.1 * max(lrs) and min(lrs[6:-1]) > lrs[-1]
    (note,) = [line for line in (run / "config_resumed_1.yaml").read_text().splitlines() if "lr schedule" in line]
    assert "planned for 6 steps, the resumed run has 12; resuming at step 6" in note
    assert note.lstrip("# ") in caplog.messages  # printed at the resume, in one line
