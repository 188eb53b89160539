"""lightning-cnn tune: the learning-rate finder (and batch-size scaler) writes a fragment fit accepts, its figure and
curve; every optimizer config works; a per-step schedule does not move the learning rates the finder tries; what
cannot be tuned is one line, exit 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from lightning_cnn.errors import ConfigError
from lightning_cnn.models.base import ImageClassifier
from lightning_cnn.training.tuning import check_tunable
from tests.helpers.runs import scalars

ROOT = Path(__file__).resolve().parents[1]
OPTIMIZERS = sorted((ROOT / "configs" / "optim").glob("*.yaml"))
# a short search: 15 steps from 1e-5 to 0.01 over 4-batch epochs of the tiny MNIST (RMSprop with momentum doubles
# its loss above that, which stops a sweep this short)
TUNE_QUICK = ["--trainer.accelerator", "cpu", "--data.val_size", "0.2", "--data.batch_size", "32",
              "--trainer.limit_train_batches", "4", "--num_training", "15", "--min_lr", "1e-5",
              "--max_lr", "0.01"]  # fmt: skip
FIT_QUICK = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu", "--data.val_size", "0.2",
             "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
             "--test_after_fit", "false", "--preview.num_images", "0"]  # fmt: skip


def tune(run_cli, mnist_dir: Path, root: Path, *args: object) -> tuple[Path, dict]:
    """Run tune on the tiny MNIST under ``root``; return its folder and its tune.json record."""
    code, err = run_cli("tune", *args, "--data.data_dir", mnist_dir, "--trainer.default_root_dir", root, *TUNE_QUICK)
    assert code == 0, err
    (folder,) = (root / "lightning_logs").glob("tune_*")
    return folder, json.loads((folder / "tune.json").read_text())


def fragment_of(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_fragment_sets_the_suggested_lr_and_fit_trains_with_it(run_cli, mnist_dir, tmp_path):
    folder, record = tune(run_cli, mnist_dir, tmp_path, "--config", "configs/mnist/lenet5.yaml")
    lr = record["suggested_lr"]
    assert record["key"] == "model.init_args.optimizer.init_args.lr" and record["configured_lr"] == 0.003
    assert 1e-5 <= lr <= 0.01 and record["steps"] == len(record["lr"]) == len(record["loss"]) > 12
    fragment = fragment_of(folder / "lr.yaml")
    assert fragment == {"model": {"init_args": {"optimizer": {"class_path": "torch.optim.Adam",
                                                              "init_args": {"lr": float(f"{lr:.3g}")}}}}}  # fmt: skip
    assert (folder / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(folder.glob("events.out.tfevents.*"))
    assert not list((tmp_path / "lightning_logs").glob("version_*"))  # no run folder for a search
    assert not list(tmp_path.rglob("*.ckpt"))  # Lightning's temporary checkpoint is gone

    assert len(scalars(folder)["tune/lr"]) == record["steps"]

    code, err = run_cli("fit", "--config", "configs/mnist/lenet5.yaml", "--config", folder / "lr.yaml",
                        "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *FIT_QUICK)  # fmt: skip
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "lightning_logs" / "version_0" / "config.yaml").read_text())
    optimizer = saved["model"]["init_args"]["optimizer"]
    assert optimizer["class_path"] == "torch.optim.Adam" and optimizer["init_args"]["lr"] == float(f"{lr:.3g}")
    assert saved["data"]["init_args"]["batch_size"] == 64  # the recipe's: without --batch_size none is in the fragment


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=[p.stem for p in OPTIMIZERS])
def test_every_optimizer_config_is_tuned_into_its_own_lr(run_cli, mnist_dir, tmp_path, optimizer):
    output = tmp_path / "out" / "lr.yaml"
    folder, record = tune(run_cli, mnist_dir, tmp_path, "--config", "configs/mnist/lenet5.yaml", "--config",
                          optimizer, "--output", output)  # fmt: skip
    given = yaml.safe_load(optimizer.read_text())["model"]["init_args"]["optimizer"]
    assert record["configured_lr"] == given["init_args"]["lr"]
    entry = fragment_of(output)["model"]["init_args"]["optimizer"]
    assert entry == {"class_path": given["class_path"], "init_args": {"lr": float(f"{record['suggested_lr']:.3g}")}}
    assert fragment_of(folder / "lr.yaml") == fragment_of(output)
    assert output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "schedule, key",
    [("onecycle", "model.init_args.lr_scheduler.init_args.max_lr"),
     ("warmup_cosine", "model.init_args.optimizer.init_args.lr"),
     ("plateau", "model.init_args.optimizer.init_args.lr")],
)  # fmt: skip
def test_a_schedule_does_not_move_the_lrs_the_finder_tries(run_cli, mnist_dir, tmp_path, monkeypatch, schedule, key):
    used: list[float] = []  # the learning rate of every optimizer step, as the optimizer had it

    def record(self: ImageClassifier, optimizer: torch.optim.Optimizer) -> None:
        used.append(optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(ImageClassifier, "on_before_optimizer_step", record, raising=False)
    folder, record = tune(run_cli, mnist_dir, tmp_path, "--config", "configs/mnist/lenet5.yaml", "--config",
                          ROOT / "configs" / "schedule" / f"{schedule}.yaml")  # fmt: skip
    assert record["key"] == key
    tried = record["lr"]
    assert used[: len(tried)] == pytest.approx(tried, rel=1e-9)
    # Lightning's exponential sweep, undisturbed: min_lr, then min_lr × q^(i + 1) (its first step is a double one)
    q = (0.01 / 1e-5) ** (1 / 15)
    assert tried == pytest.approx([1e-5] + [1e-5 * q ** (i + 1) for i in range(1, len(tried))], rel=1e-6)
    section, _, argument = key.removeprefix("model.init_args.").partition(".init_args.")
    entry = fragment_of(folder / "lr.yaml")["model"]["init_args"][section]
    assert entry["init_args"] == {argument: float(f"{record['suggested_lr']:.3g}")}


def test_the_batch_size_scaler_runs_first_and_fit_takes_both(run_cli, mnist_dir, tmp_path):
    folder, record = tune(run_cli, mnist_dir, tmp_path, "--config", "configs/mnist/lenet5.yaml", "--batch_size",
                          "--max_batch_size", "128", "--steps_per_trial", "1")  # fmt: skip
    assert record["configured_batch_size"] == 32 and record["batch_size"] == 128  # a CPU: up to the cap
    fragment = fragment_of(folder / "lr.yaml")
    assert fragment["data"] == {"init_args": {"batch_size": 128}}
    assert math.isclose(fragment["model"]["init_args"]["optimizer"]["init_args"]["lr"],
                        float(f"{record['suggested_lr']:.3g}"))  # fmt: skip
    code, err = run_cli("fit", "--config", "configs/mnist/lenet5.yaml", "--config", folder / "lr.yaml",
                        "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *FIT_QUICK)  # fmt: skip
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "lightning_logs" / "version_0" / "config.yaml").read_text())
    assert saved["data"]["init_args"]["batch_size"] == 128


def test_an_image_folder_is_tuned(run_cli, image_folder_dir, tmp_path):
    code, err = run_cli("tune", "--data", "ImageFolderDataModule", "--data.root", image_folder_dir / "folders",
                        "--data.val_size", "20", "--trainer.default_root_dir", tmp_path, "--trainer.accelerator",
                        "cpu", "--data.batch_size", "16", "--num_training", "15", "--min_lr", "1e-5")  # fmt: skip
    assert code == 0, err
    (folder,) = (tmp_path / "lightning_logs").glob("tune_*")
    assert fragment_of(folder / "lr.yaml")["model"]["init_args"]["optimizer"]["init_args"]["lr"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trainer.devices", "2"], "tune runs on one device"),
        (["--trainer.strategy", "ddp"], "tune runs on one device"),
        (["--config", "configs/schedule/plateau.yaml", "--trainer.limit_val_batches", "0"], "ReduceLROnPlateau"),
        (["--trainer.fast_dev_run", "true"], "fast_dev_run"),
        (["--num_training", "5"], "--num_training must be at least 15"),
        (["--min_lr", "0.1", "--max_lr", "0.01"], "0 < min_lr < max_lr"),
        (["--output", "lr.txt"], "--output must name a .yaml file"),
        (["--batch_size", "--max_batch_size", "0"], "--max_batch_size and --steps_per_trial must be 1 or more"),
        (["--trainer.max_epoch", "3"], "max_epoch"),
    ],
)
def test_what_cannot_be_tuned_is_one_line_exit_2(run_cli, mnist_dir, tmp_path, args, message):
    code, err = run_cli("tune", "--config", "configs/mnist/lenet5.yaml", "--data.data_dir", mnist_dir,
                        "--trainer.default_root_dir", tmp_path, "--trainer.accelerator", "cpu", *args)  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith(("error", "Traceback"))]
    assert code == 2 and len(errors) == 1 and message in errors[0], err
    assert not (tmp_path / "lightning_logs").exists()  # refused before anything was written


def test_the_scaler_refuses_a_data_module_without_batch_size():
    class Namespaced(dict):
        __getattr__ = dict.__getitem__

    config = Namespaced(trainer={}, model=Namespaced(init_args={}))
    with pytest.raises(ConfigError, match="has no batch_size to scale"):
        check_tunable(config, object(), scale_batch_size=True)
    check_tunable(config, object(), scale_batch_size=False)  # the learning rate alone needs none
