"""Checkpoints stay loadable with torch.compile and weight EMA, and ``last.ckpt`` is the last epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_cnn.errors import ConfigError
from lightning_cnn.models import LeNet5, SimpleCNN
from lightning_cnn.models.base import ImageClassifier
from lightning_cnn.run_folder import resolve_checkpoint, run_checkpoint
from tests.helpers.runs import QUICK, fit_tiny_run

CONFIGS = Path(__file__).parent.parent / "configs"


def test_compiled_network_keeps_plain_parameter_names():
    compiled = LeNet5(compile=True)
    compiled.configure_model()
    assert compiled.net._compiled_call_impl is not None  # compiled in place, not wrapped
    keys = list(compiled.state_dict())
    assert keys and not any("_orig_mod" in key for key in keys)
    plain = LeNet5()
    plain.load_state_dict(compiled.state_dict())  # strict: every name matches


def test_ema_run_checkpoint_validates_and_is_tested_with_its_averaged_weights(run_cli, mnist_dir, tmp_path):
    common = ("--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *QUICK)
    code, err = run_cli("fit", "--config", CONFIGS / "callbacks" / "ema.yaml", "--trainer.max_epochs", 2,
                        "--test_after_fit", "true", *common)  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1
    code, err = run_cli("validate", "--ckpt_path", last, *common)
    assert code == 0, err
    # test_after_fit tests what the checkpoint holds (the averaged weights), as a later `test` of it does
    after_fit = json.loads((run / "metrics.json").read_text())
    code, err = run_cli("test", "--config", run / "config.yaml", "--ckpt_path", after_fit["checkpoint"])
    assert code == 0, err
    assert json.loads((run / "metrics.json").read_text())["confusion_matrix"] == after_fit["confusion_matrix"]


def test_last_checkpoint_is_refreshed_when_the_metric_stops_improving(run_cli, mnist_dir, tmp_path):
    # with a zero learning rate val/acc never improves after epoch 0, yet last.ckpt must follow every epoch
    code, err = run_cli(
        "fit", "--model.optimizer.init_args.lr", 0.0, "--trainer.max_epochs", 3, "--data.data_dir", mnist_dir,
        "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    assert code == 0, err
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["epoch"] == 2
    assert [p.name for p in checkpoints.glob("epoch*.ckpt")] == [p.name for p in checkpoints.glob("epoch000-*.ckpt")]


def test_test_a_saved_run_with_ckpt_path_best_or_last(mnist_dir, tmp_path):
    from lightning_cnn.cli import cli_main

    common = ["--data.data_dir", str(mnist_dir), "--trainer.default_root_dir", str(tmp_path), *QUICK]
    cli_main(["fit", "--trainer.max_epochs", "2", "--model.optimizer.init_args.lr", "0.0", *common])
    cli_main(["fit", "--trainer.max_epochs", "1", *common])  # a newer run in the same root
    run = tmp_path / "lightning_logs" / "version_0"
    saved = str(run / "config.yaml")
    best = cli_main(["test", "--config", saved, "--ckpt_path", "best", *common])
    assert Path(best.trainer.ckpt_path).name.startswith("epoch000-")  # lr 0: epoch 0 stays the best
    assert Path(best.trainer.ckpt_path).parent == run / "checkpoints"
    last = cli_main(["validate", "--ckpt_path", "last", *common])  # no saved config: the newest run
    assert Path(last.trainer.ckpt_path) == tmp_path / "lightning_logs" / "version_1" / "checkpoints" / "last.ckpt"


def test_the_base_class_loads_the_architecture_a_checkpoint_records(mnist_dir, tmp_path):
    run = fit_tiny_run(tmp_path, ["--data.data_dir", str(mnist_dir)], model="SimpleCNN")
    last = run / "checkpoints" / "last.ckpt"
    model = ImageClassifier.load_from_checkpoint(last, map_location="cpu")
    assert type(model) is SimpleCNN  # Lightning alone builds a bare ImageClassifier and fails on its weights
    saved = torch.load(last, weights_only=False, map_location="cpu")["state_dict"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(ConfigError, match="checkpoint file not found"):
        ImageClassifier.load_from_checkpoint(tmp_path / "missing.ckpt")


def test_a_run_folder_whose_best_checkpoint_is_gone_gives_last_with_a_warning(mnist_dir, tmp_path):
    run = fit_tiny_run(tmp_path, ["--data.data_dir", str(mnist_dir)])
    last = run / "checkpoints" / "last.ckpt"
    assert resolve_checkpoint(run) != last  # the best one, while it is there
    for path in (run / "checkpoints").glob("epoch*.ckpt"):
        path.unlink()
    with pytest.warns(UserWarning, match="the best checkpoint .* records is gone; using"):
        assert resolve_checkpoint(run) == last
    with pytest.raises(ConfigError, match="'best' is not recorded in .* \\(or its file is gone\\)"):
        run_checkpoint(run, "best")  # asked for by name: an error, not another file
