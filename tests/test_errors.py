"""Bad input: one line naming the problem, a non-zero exit, no traceback, existing runs untouched."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.error import URLError

import pytest

from tests.helpers.runs import QUICK


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def previous_run(tmp_path_factory, mnist_dir) -> Path:
    """A run folder that every bad command below must leave exactly as it was."""
    from lightning_cnn.__main__ import main

    root = tmp_path_factory.mktemp("runs")
    main(["fit", "--data.data_dir", str(mnist_dir), "--trainer.max_epochs", "1",
          "--trainer.default_root_dir", str(root), *QUICK])  # fmt: skip
    return root


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["--model", "ResNet999"], 2, ["model: unknown class 'ResNet999'", "LeNet5", "SimpleCNN"]),
        (["--data", "ImageNet"], 2, ["data: unknown class 'ImageNet'", "MNISTDataModule", "CIFAR10DataModule"]),
        (["--model.optimizer.lr", "fast"], 2, ["model.optimizer.lr", "expected float", "'fast'"]),
        (["--model.activation", "swishy"], 2, ["model.activation", "relu", "tanh", "'swishy'"]),
        (["--model", "SimpleCNN", "--model.padding", "1"], 2, ["SimpleCNN has no option 'padding'"]),
        (["--trainer.max_epochs", "many"], 2, ["trainer.max_epochs", "expected int"]),
        (
            ["--model", "ResNet18", "--model.weights", "FOO"],
            2,
            ["model.weights: expected one of DEFAULT, IMAGENET1K_V1 or null, got 'FOO'"],
        ),
        (["--model.optimizer", "Adamm"], 2, ["model.optimizer: unknown class 'Adamm'", "torch.optim.AdamW"]),
        (
            ["--model.lr_scheduler", "ReduceLROnPlateau"],
            2,
            ["'ReduceLROnPlateau' is ambiguous", "torch.optim.lr_scheduler.ReduceLROnPlateau or lightning.pytorch"],
        ),
        (
            ["--model.lr_scheduler", "StepLR", "--model.lr_scheduler.step_size", "x"],
            2,
            ["model.lr_scheduler.step_size: expected int, got 'x'"],
        ),
        (["--data.batch_size", "-3"], 2, ["data.batch_size must be at least 1, got -3"]),
        (["--config", "missing.yaml"], 2, ["config file not found: missing.yaml"]),
        (
            ["--data.data_dir", "{empty}", "--data.download", "false"],
            1,
            ["MNIST not found", "{empty}/MNIST/raw", "train-images-idx3-ubyte", "data.download true"],
        ),
        # typos in keys and class paths
        (["--trainer.max_epochz", "3"], 2, ["unrecognized arguments: --trainer.max_epochz"]),
        (["--trainer.max_ep", "3"], 2, ["unrecognized arguments: --trainer.max_ep"]),  # no abbreviations
        (["--model.optimizer.lrr", "0.1"], 2, ["model.optimizer: Adam has no option 'lrr'"]),
        (["--model", "lightning_cnn.models.LeNet6"], 2, ["model: unknown class 'lightning_cnn.models.LeNet6'"]),
        # wrong types and values out of range
        (["--trainer.precision", "7"], 2, ["trainer.precision: expected one of", "'7'"]),
        (["--seed_everything", "abc"], 2, ["seed_everything: expected bool or int, got 'abc'"]),
        (["--model.label_smoothing", "1.5"], 2, ["model.label_smoothing must be in [0, 1), got 1.5"]),
        (["--model", "ConvNet", "--model.dropout", "1.5"], 2, ["model.dropout: 1.5 is out of range"]),
        (["--checkpoint.mode", "min"], 2, ["checkpoint.monitor: 'val/acc' improves in mode 'max', not 'min'"]),
        (
            ["--early_stopping", "EarlyStopping", "--early_stopping.monitor", "val/accuracy"],
            2,
            ["early_stopping.monitor: 'val/accuracy' is never logged", "val/acc"],
        ),
        (["--trainer.accelerator", "tpu"], 2, ["trainer.accelerator: 'tpu' is not available on this machine", "cpu"]),
        # negative and impossible sizes
        (["--data.val_size", "-5"], 2, ["data.val_size must be a number of images (1 or more)", "got -5"]),
        (["--data.val_size", "5000"], 2, ["data.val_size=5000 leaves no training images out of 1200"]),
        (["--data.num_workers", "-1"], 2, ["data.num_workers must be 0 to", "got -1"]),
        # model and data shapes that do not fit
        (
            ["--model", "ConvNet", "--model.channels", "[8,8,8,8,8,8]"],
            2,
            ["model.channels: 6 stages", "shrink a 28×28 input below 1×1", "at most 4 stages"],
        ),
        (
            ["--data", "CIFAR10DataModule", "--data.data_dir", "{cifar}", "--ckpt_path", "{ckpt}"],
            2,
            ["ckpt_path: the checkpoint's weights do not fit this model", "size mismatch"],
        ),
        # the data decides the model's classes and image shape: a contradicting value is not silently replaced
        (["--model.num_classes", "5"], 2, ["model.num_classes: 5 given, but MNISTDataModule gives 10", "leave model"]),
        (["--model.input_shape", "[3,32,32]"], 2, ["model.input_shape: (3, 32, 32) given, but MNISTDataModule"]),
        # missing, empty and wrong files
        (["--config", "{empty}/bad.yaml"], 2, ["config file {empty}/bad.yaml: invalid YAML at line 2"]),
        (["--config", "{empty}/empty.yaml"], 2, ["config file {empty}/empty.yaml is empty"]),
        (["--config", "{empty}"], 2, ["config file {empty} is a folder; give a file"]),
        (["--ckpt_path", "{empty}/missing.ckpt"], 2, ["ckpt_path: checkpoint file not found: {empty}/missing.ckpt"]),
        (["--ckpt_path", "{empty}/not.ckpt"], 2, ["ckpt_path: {empty}/not.ckpt is not a PyTorch checkpoint"]),
        (["--model", "SimpleCNN", "--ckpt_path", "{ckpt}"], 2, ["holds a LeNet5, not a SimpleCNN", "--model LeNet5"]),
        (["--data", "ImageFolderDataModule", "--data.root", "{empty}"], 1, ["no class sub-folders in {empty}"]),
        (
            ["--data", "ImageFolderDataModule", "--data.root", "{empty}", "--data.train_dir", "trian"],
            1,
            ["data.train_dir: no folder trian in {empty}", "relative to data.root"],
        ),
        (
            ["--data", "ImageFolderDataModule", "--data.root", "{empty}/bad.yaml"],
            2,
            ["data.root: {empty}/bad.yaml is a file, not a folder or a .tar.gz, .tgz or .tar archive"],
        ),
        (
            ["--data", "CIFAR10DataModule", "--data.data_dir", "{empty}", "--data.download", "false"],
            1,
            ["CIFAR-10 not found", "{empty}/cifar-10-batches-py"],
        ),
    ],
)
def test_bad_input_is_one_clear_line(run_cli, previous_run, mnist_dir, cifar10_dir, tmp_path, args, code, expected):
    assert len(test_bad_input_is_one_clear_line.pytestmark[0].args[1]) >= 25  # the table the issue asks for
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "not.ckpt").write_text("not a checkpoint")
    before = snapshot(previous_run)
    places = {
        "empty": tmp_path,
        "cifar": cifar10_dir,
        "ckpt": previous_run / "lightning_logs/version_0/checkpoints/last.ckpt",
    }
    args = [a.format(**places) for a in args]
    common = ["--data.data_dir", mnist_dir, "--trainer.default_root_dir", previous_run, "--trainer.max_epochs", "1"]
    actual, err = run_cli("fit", *common, *QUICK, *args)
    assert actual == code
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, err
    for fragment in expected:
        assert fragment.format(**places) in error_lines[0]
    assert snapshot(previous_run) == before
    assert sorted(p.name for p in (previous_run / "lightning_logs").iterdir()) == ["version_0"]


def test_no_data_and_no_network_names_folder_and_files(run_cli, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code, err = run_cli("fit", "--data.data_dir", tmp_path / "nothing", "--trainer.default_root_dir", tmp_path, *QUICK)
    assert code == 1
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "download failed" in line and f"{tmp_path}/nothing/MNIST/raw" in line and "t10k-images-idx3-ubyte" in line


def test_the_real_process_prints_no_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "lightning_cnn", "fit", "--model", "Nope", "--trainer.default_root_dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[0].startswith("error: model: unknown class 'Nope'")
    assert list(tmp_path.iterdir()) == []
