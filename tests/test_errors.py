"""Bad input: one line naming the problem, a non-zero exit, no traceback, existing runs untouched."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.error import URLError

import pytest

from tests.conftest import QUICK


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def previous_run(tmp_path_factory, mnist_dir) -> Path:
    """A run folder that every bad command below must leave exactly as it was."""
    from lightning_cnn.cli import main

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
        (["--data.batch_size", "-3"], 1, ["data.batch_size must be at least 1, got -3"]),
        (["--config", "missing.yaml"], 1, ["config file not found: missing.yaml"]),
        (
            ["--data.data_dir", "{empty}", "--data.download", "false"],
            1,
            ["MNIST not found", "{empty}/MNIST/raw", "train-images-idx3-ubyte", "data.download true"],
        ),
    ],
)
def test_bad_input_is_one_clear_line(run_cli, previous_run, tmp_path, args, code, expected):
    before = snapshot(previous_run)
    args = [a.format(empty=tmp_path) for a in args]
    actual, err = run_cli("fit", *args, "--trainer.default_root_dir", previous_run, *QUICK)
    assert actual == code
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, err
    for fragment in expected:
        assert fragment.format(empty=tmp_path) in error_lines[0]
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
