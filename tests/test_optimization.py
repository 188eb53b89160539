"""Optimizers, regularization, precision and early stopping exactly as the config names them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

from lightning_cnn.cli import cli_main
from lightning_cnn.models import LeNet5
from tests.helpers.runs import QUICK, scalars

CONFIGS = Path(__file__).parent.parent / "configs"
PLATEAU = "torch.optim.lr_scheduler.ReduceLROnPlateau"
OPTIMIZERS = sorted((CONFIGS / "optim").glob("*.yaml"))


def fit(mnist_dir: Path, tmp_path: Path, *args: object, epochs: int = 1):
    """Build the run from the LeNet-5 recipe plus ``args``, train it, and return the CLI object."""
    cli = cli_main(
        [
            "--config",
            str(CONFIGS / "mnist" / "lenet5.yaml"),
            *map(str, args),
            "--data.data_dir",
            str(mnist_dir),
            "--trainer.max_epochs",
            str(epochs),
            "--trainer.default_root_dir",
            str(tmp_path),
            *QUICK,
        ],  # fmt: skip
        run=False,
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


@pytest.mark.parametrize("path", OPTIMIZERS, ids=lambda p: p.stem)
def test_the_configured_optimizer_is_the_one_that_trains(path, mnist_dir, tmp_path):
    wanted = yaml.safe_load(path.read_text())["model"]["init_args"]
    cli = fit(mnist_dir, tmp_path, "--config", path)
    (optimizer,) = cli.trainer.optimizers
    assert (
        f"{type(optimizer).__module__}.{type(optimizer).__name__}".replace(".adamw.", ".").replace(
            f".{type(optimizer).__name__.lower()}.", "."
        )
        == wanted["optimizer"]["class_path"]
    )
    for key, value in wanted["optimizer"]["init_args"].items():
        assert optimizer.defaults[key] == value, key  # (the recipe's schedule has since moved the live lr)
    assert optimizer.state, "the optimizer took no step"
    if wanted.get("decay_norm_and_bias") is False:
        no_decay = optimizer.param_groups[1]
        assert no_decay["weight_decay"] == 0.0
        assert all(p.ndim == 1 for p in no_decay["params"])  # biases (LeNet-5 has no norm layers)


def test_weight_decay_skips_norms_and_biases_when_asked():
    model = LeNet5(decay_norm_and_bias=False)
    decayed, exempt = (group["params"] for group in model.parameter_groups())
    assert {p.ndim for p in decayed} == {2, 4} and {p.ndim for p in exempt} == {1}
    assert len(decayed) + len(exempt) == len(list(model.parameters()))


def test_l1_penalty_and_label_smoothing_change_the_loss(mnist_dir):
    batch = (torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    torch.manual_seed(0)
    plain = LeNet5()
    regularized = LeNet5(l1_weight=1e-3, label_smoothing=0.1)
    regularized.load_state_dict(plain.state_dict())
    for model in (plain, regularized):
        model.log = model.log_dict = lambda *a, **k: None  # no trainer attached
    l1 = sum(p.abs().sum() for n, p in plain.net.named_parameters() if not n.endswith("bias"))
    smoothed = torch.nn.functional.cross_entropy(plain(batch[0]), batch[1], label_smoothing=0.1)
    assert regularized.training_step(batch, 0).item() == pytest.approx((smoothed + 1e-3 * l1).item(), rel=1e-5)
    assert plain.training_step(batch, 0).item() != pytest.approx(regularized.training_step(batch, 0).item())


def test_gradient_clipping_from_the_config(mnist_dir, tmp_path):
    cli = fit(mnist_dir, tmp_path, "--trainer.gradient_clip_val", 0.5)
    assert cli.trainer.gradient_clip_val == 0.5


def test_bf16_mixed_precision_trains_on_cpu(mnist_dir, tmp_path):
    cli = fit(mnist_dir, tmp_path, "--config", CONFIGS / "trainer" / "bf16.yaml", epochs=2)
    assert cli.trainer.precision == "bf16-mixed"
    run = scalars(tmp_path / "lightning_logs" / "version_0")
    assert all(torch.isfinite(torch.tensor(run["train/loss"])))
    assert run["val/acc"][-1] > 0.5


def test_early_stopping_stops_a_stalled_run_and_says_why(run_cli, mnist_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    code, err = run_cli(
        "fit", "--config", CONFIGS / "mnist" / "lenet5.yaml", "--config", CONFIGS / "callbacks" / "early_stopping.yaml",
        "--early_stopping.init_args.patience", 2, "--model.optimizer.init_args.lr", 0.0,  # nothing can improve
        "--data.data_dir", mnist_dir, "--trainer.max_epochs", 20, "--trainer.default_root_dir", tmp_path,
        "--test_after_fit", "false", *QUICK,
    )  # fmt: skip
    assert code == 0, err
    assert "did not improve in the last 2 records" in caplog.text
    assert len(scalars(tmp_path / "lightning_logs" / "version_0")["val/loss"]) == 3  # best, then 2 bad epochs


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.lr_scheduler", PLATEAU, "--model.lr_scheduler_monitor", "val/accuracy"],
         ["model.lr_scheduler_monitor: 'val/accuracy' is never logged", "val/acc", "val/loss"]),
        (["--model.lr_scheduler", "lightning.pytorch.cli.ReduceLROnPlateau", "--model.lr_scheduler.monitor", "val/auc"],
         ["model.lr_scheduler.monitor: 'val/auc' is never logged"]),
        (["--model.lr_scheduler", PLATEAU, "--model.lr_scheduler_monitor", "val/acc"],
         ["'val/acc' improves in mode 'max', not 'min'"]),
        (["--checkpoint.monitor", "val/top1"], ["checkpoint.monitor: 'val/top1' is never logged"]),
        (["--checkpoint.mode", "min"], ["checkpoint.monitor: 'val/acc' improves in mode 'max', not 'min'"]),
        (["--early_stopping", "EarlyStopping", "--early_stopping.monitor", "valid/loss"],
         ["early_stopping.monitor: 'valid/loss' is never logged"]),
        (["--model.optimizer", "torch.optim.Adamm"], ["model.optimizer", "torch.optim.Adamm"]),
    ],
)  # fmt: skip
def test_bad_training_settings_fail_before_training(args, expected, run_cli, mnist_dir, tmp_path):
    code, err = run_cli("fit", *args, "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *QUICK)
    assert code != 0
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    for fragment in expected:
        assert fragment in line
    assert not (tmp_path / "lightning_logs").exists()  # nothing trained, nothing written
