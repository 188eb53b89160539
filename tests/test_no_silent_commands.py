"""No command does something useless in silence: evaluating needs a checkpoint, ``predict`` writes its
predictions, a file that is not a Lightning checkpoint is one line everywhere, and an accelerator that is not
there is named with what is."""

from __future__ import annotations

import csv

import pytest
import torch

from lightning_cnn import preflight
from tests.helpers.runs import QUICK

SHORT = [
    *QUICK, "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--data.batch_size", "16",
    "--trainer.num_sanity_val_steps", "0", "--preview.num_images", "0", "--report.num_images", "0",
]  # fmt: skip


def error_line(err: str) -> str:
    assert "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_evaluating_without_a_checkpoint_is_refused(run_cli, mnist_dir, tmp_path, subcommand):
    code, err = run_cli(subcommand, "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *QUICK)
    assert code == 2
    assert f"{subcommand} needs --ckpt_path" in error_line(err)
    assert not any(tmp_path.iterdir())


def test_predict_writes_its_predictions_to_a_csv_in_the_run_folder(run_cli, mnist_dir, tmp_path):
    common = ("--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *SHORT)
    assert run_cli("fit", "--trainer.max_epochs", 1, *common)[0] == 0
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    code, err = run_cli("predict", "--ckpt_path", checkpoint, "--trainer.limit_predict_batches", 3, *common)
    assert code == 0, err
    # into the folder of the run the checkpoint belongs to, not a new one
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir()] == ["version_0"]
    path = tmp_path / "lightning_logs" / "version_0" / "predictions.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["index"]) for row in rows] == list(range(len(rows)))  # the test images, in order
    assert 0 < len(rows) < 300 and len(rows) % 3 == 0  # three whole batches of the 300 test images
    classes = {str(k) for k in range(10)}
    assert all(row["label"] in classes and row["class"] in classes for row in rows)
    assert all(0.1 <= float(row["probability"]) <= 1 for row in rows)  # the best of 10 classes: at least 1/10
    assert len({row["label"] for row in rows}) > 1


@pytest.mark.parametrize(
    "command",
    [
        ["fit", "--ckpt_path", "{bare}"],
        ["validate", "--ckpt_path", "{bare}"],
        ["test", "--ckpt_path", "{bare}"],
        ["predict", "--ckpt_path", "{bare}"],
        ["predict-files", "--ckpt_path", "{bare}", "{data}"],
        ["ensemble", "--ckpt_path", "{bare}", "{bare}"],
        ["export", "--ckpt_path", "{bare}", "--output", "{out}/model.onnx"],
    ],
    ids=lambda command: command[0],
)
def test_a_file_that_is_not_a_lightning_checkpoint_is_one_line_for_every_command(run_cli, mnist_dir, tmp_path, command):
    bare = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), bare)  # a bare state_dict, as plain PyTorch code saves one
    args = [a.format(bare=bare, data=mnist_dir, out=tmp_path) for a in command]
    if command[0] in ("fit", "validate", "test", "predict"):
        args += ["--data.data_dir", str(mnist_dir), "--trainer.default_root_dir", str(tmp_path / "runs"), *QUICK]
    code, err = run_cli(*args)
    assert code == 2
    line = error_line(err)
    assert f"{bare} is not a Lightning checkpoint" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pt"]


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_weights_that_do_not_fit_the_model_are_one_line_and_the_run_stays_as_it_was(
    run_cli, mnist_dir, tmp_path, subcommand
):
    common = ("--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *SHORT)
    assert run_cli("fit", "--trainer.max_epochs", 1, *common)[0] == 0
    run = tmp_path / "lightning_logs" / "version_0"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    # padding 0 gives LeNet-5 smaller feature maps, so its first linear layer takes fewer inputs
    code, err = run_cli(subcommand, "--config", run / "config.yaml", "--ckpt_path", "last", "--model.padding", 0)
    assert code == 2
    line = error_line(err)
    assert "the checkpoint's weights do not fit this model (size mismatch for net." in line, line
    assert "is kept" not in err  # nothing ran: no word about keeping a folder
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert [p.name for p in run.parent.iterdir()] == ["version_0"]


@pytest.mark.parametrize("accelerator", ["gpu", "mps", "tpu"])
def test_an_absent_accelerator_names_the_key_and_what_is_there(run_cli, mnist_dir, tmp_path, monkeypatch, accelerator):
    monkeypatch.setattr(preflight, "available_devices", lambda: {"cpu": 1})
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path,
                        "--trainer.accelerator", accelerator)  # fmt: skip
    assert code == 2
    line = error_line(err)
    assert f"trainer.accelerator: '{accelerator}' is not available on this machine; available: cpu" in line, line
    assert not any(tmp_path.iterdir())


def test_more_devices_than_the_machine_has_names_the_key_and_the_count(run_cli, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "available_devices", lambda: {"cpu": 1, "cuda": 1})
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path,
                        "--trainer.accelerator", "gpu", "--trainer.devices", 4)  # fmt: skip
    assert code == 2
    line = error_line(err)
    assert "trainer.devices: 4 asked for" in line and "this machine has 1 cuda device;" in line, line
    assert "cuda (1 device)" in line
    assert not any(tmp_path.iterdir())
