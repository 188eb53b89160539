"""A checkpoint is data, never code: a shared file whose unpickling would run code is refused in one line by every
command that takes a checkpoint, before anything in it runs; ``--trust_checkpoint true`` is the explicit way to load
a file the user trusts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from lightning_cnn.checkpoints import sum_file
from lightning_cnn.errors import UntrustedCheckpointError
from lightning_cnn.inference.trained import load_trained
from tests.helpers.runs import QUICK, fit_tiny_run
from tests.helpers.writers import synthetic_images


class Payload:
    """What an attacker pickles into a checkpoint: unpickling it calls ``Path.write_text`` on ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return Path.write_text, (self.marker, "the checkpoint ran code")


@pytest.fixture(scope="module")
def trained(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_tiny_run(tmp_path_factory.mktemp("runs"), ["--data.data_dir", str(mnist_dir)])


@pytest.fixture
def planted(trained: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the trained run whose checkpoints hold a payload, a loose copy of one, and the payload's marker."""
    marker = tmp_path / "pwned"
    run = tmp_path / "root" / "lightning_logs" / "version_0"
    shutil.copytree(trained, run)
    for checkpoint in (run / "checkpoints").glob("*.ckpt"):
        content = torch.load(checkpoint, weights_only=True)
        content["shared_by"] = Payload(marker)  # a key nothing reads: only unpickling runs it
        torch.save(content, checkpoint)
        sum_file(checkpoint).unlink()  # a file from elsewhere has no SHA-256 record to betray it
    loose = tmp_path / "shared.ckpt"
    shutil.copy(run / "checkpoints" / "last.ckpt", loose)
    return run, loose, marker


def refused(code: int, err: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1, err
    assert "holds more than weights and plain data (it names getattr)" in errors[0], errors[0]
    assert errors[0].endswith("Only for a file you trust, add --trust_checkpoint true"), errors[0]
    assert "Traceback" not in err


def test_the_planted_payload_runs_when_the_user_trusts_the_file(planted):
    run, loose, marker = planted
    load_trained(loose, trust=True)
    assert marker.read_text() == "the checkpoint ran code"  # the payload is live: the refusals below are real


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
@pytest.mark.parametrize("which", ["loose file", "run folder"])
def test_every_lightning_subcommand_refuses_it_before_it_runs(planted, run_cli, mnist_dir, tmp_path, subcommand, which):
    run, loose, marker = planted
    if which == "loose file":
        args = ["--ckpt_path", loose, "--trainer.default_root_dir", tmp_path / "elsewhere"]
    else:
        args = ["--config", run / "config.yaml", "--ckpt_path", "last"]
    code, err = run_cli(subcommand, *args, "--data.data_dir", mnist_dir, *QUICK, "--trainer.max_epochs", "2")
    refused(code, err)
    assert not marker.exists()


def test_the_tools_refuse_it_before_it_runs(planted, run_cli, trained, tmp_path):
    run, loose, marker = planted
    images = tmp_path / "images"
    images.mkdir()
    pixels, _ = synthetic_images(2, (28, 28, 1), 0)
    for i, image in enumerate(pixels):
        Image.fromarray(image[..., 0]).save(images / f"{i}.png")
    commands = [
        ["predict-files", "--ckpt_path", loose, images, "--output", tmp_path / "p.csv"],
        ["predict-files", "--ckpt_path", run, images, "--output", tmp_path / "p.csv"],
        ["ensemble", "--ckpt_path", trained, loose, "--output", tmp_path / "e.json"],
        ["export", "--ckpt_path", loose, "--output", tmp_path / "m.onnx"],
    ]
    for command in commands:
        refused(*run_cli(*command))
        assert not marker.exists(), command
    with pytest.raises(UntrustedCheckpointError, match="--trust_checkpoint"):
        load_trained(run)
    code, err = run_cli("runs", run.parent.parent)  # lists runs without loading what they hold
    assert not marker.exists()


def test_a_trusted_file_is_used_as_before(planted, run_cli):
    run, loose, marker = planted
    code, err = run_cli("export", "--ckpt_path", loose, "--output", loose.with_suffix(".onnx"), "--trust_checkpoint")
    assert code == 0, err
    assert marker.exists() and loose.with_suffix(".onnx").is_file()
