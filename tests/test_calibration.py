"""Calibration: test/ece and test/mce in metrics.json with the reliability diagram, ``calibrate``'s temperature
(fit on the validation split, never worse in NLL; the test split's figures before and after), and ``predict-files``,
``ensemble`` and ``export`` with and without it."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_cnn.__main__ import main
from lightning_cnn.checkpoints import record_sum, sha256
from lightning_cnn.data import MNISTDataModule
from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.calibration import CALIBRATION_FILE, ece, fit_temperature, nll, probability_ece
from lightning_cnn.inference.trained import load_trained
from lightning_cnn.models.calibration import ReliabilityBins, calibration_metrics
from lightning_cnn.run_folder import resolve_checkpoint
from lightning_cnn.tools.predict_files import run_temperature
from lightning_cnn.training.report import reliability_figure
from tests.helpers.runs import fit_tiny_run


@pytest.fixture(scope="module")
def mnist_run(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = ["--data", "MNISTDataModule", "--data.data_dir", str(mnist_dir), "--data.download", "false"]
    return fit_tiny_run(tmp_path_factory.mktemp("calibration"), data)


@pytest.fixture(scope="module")
def calibrated(mnist_run: Path) -> tuple[Path, str]:
    """``mnist_run`` after ``calibrate``: its folder and what the command printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(["calibrate", str(mnist_run), "--device", "cpu"])
    return mnist_run, out.getvalue()


@pytest.fixture(scope="module")
def test_split(mnist_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    datamodule = MNISTDataModule(data_dir=str(mnist_dir), download=False)
    datamodule.setup("test")
    return datamodule.test_set.images, datamodule.test_set.labels


def copied_checkpoint(run: Path, folder: Path) -> Path:
    """The run's checkpoint as a file of its own in ``folder`` (no calibration.json there), with its SHA-256 record."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "copy.ckpt"
    shutil.copy(resolve_checkpoint(run), copy)
    record_sum(copy, sha256(copy))
    return copy


def probabilities_of(csv_path: Path) -> list[list[float]]:
    with open(csv_path, newline="") as f:
        return [[float(row[f"top{i}_probability"]) for i in range(1, 11)] for row in csv.DictReader(f)]


def test_reliability_bins_give_the_calibration_errors():
    probs = torch.randn(400, 10).mul(3).softmax(dim=1)
    labels = torch.randint(0, 10, (400,))
    bins = ReliabilityBins()
    bins.update(probs, labels)
    count, confidence, accuracy = bins.compute()
    gap = (confidence - accuracy).abs()
    metrics = calibration_metrics(10)
    assert int(count.sum()) == 400
    assert float((count / count.sum() * gap).sum()) == pytest.approx(float(metrics["ece"](probs, labels)), abs=1e-5)
    assert float(gap[count > 0].max()) == pytest.approx(float(metrics["mce"](probs, labels)), abs=1e-5)


def test_fit_temperature_recovers_a_known_temperature():
    torch.manual_seed(0)
    true_logits = torch.randn(2000, 5) * 2
    labels = torch.distributions.Categorical(logits=true_logits).sample()
    temperature = fit_temperature(true_logits * 3, labels)  # over-confident by a factor 3
    assert temperature == pytest.approx(3, rel=0.15)
    assert nll(true_logits * 3, labels, temperature) < nll(true_logits * 3, labels)


def test_test_reports_ece_mce_and_the_reliability_diagram(mnist_run, run_cli, tmp_path):
    code, err = run_cli(
        "test", "--config", mnist_run / "config.yaml", "--ckpt_path", resolve_checkpoint(mnist_run),
        "--trainer.default_root_dir", tmp_path, "--trainer.enable_progress_bar", "false",
    )  # fmt: skip
    assert code == 0, err
    tested = tmp_path / "lightning_logs" / "version_0"
    report = json.loads((tested / "metrics.json").read_text())
    assert 0 <= report["test/ece"] <= report["test/mce"] <= 1
    with Image.open(tested / "reliability.png") as image:
        assert image.size[0] > 300


def test_calibrate_measures_the_test_split_before_and_after(calibrated, test_split):
    run, printed = calibrated
    record = json.loads((run / CALIBRATION_FILE).read_text())
    temperature = record["temperature"]
    assert temperature > 0 and temperature != 1.0
    assert record["val_nll_after"] <= record["val_nll_before"] + 1e-6
    assert 0 <= record["val_ece_after"] <= 1 and record["val_images"] > 0
    logits = load_trained(run).logits(test_split[0])
    assert record["test_images"] == len(test_split[1]) == 300
    assert record["test_ece_before"] == pytest.approx(ece(logits, test_split[1]), abs=1e-6)
    assert record["test_ece_after"] == pytest.approx(ece(logits, test_split[1], temperature), abs=1e-6)
    assert record["test_nll_after"] == pytest.approx(nll(logits, test_split[1], temperature), abs=1e-6)
    assert 0 <= record["test_ece_after"] <= record["test_mce_after"] <= 1
    assert record["test_acc_before"] == record["test_acc_after"]  # dividing by T changes no prediction
    assert f"test ECE {record['test_ece_before']:.4f} -> {record['test_ece_after']:.4f}" in printed
    single = reliability_figure(torch.zeros(3, 15), {})  # the report's diagram: drawn twice, before and after
    with Image.open(run / "reliability_calibrated.png") as image:
        assert image.size == (2 * single.shape[1], single.shape[0])


def test_calibrate_then_predict_files_with_and_without_the_temperature(calibrated, tmp_path, run_cli):
    mnist_run, _ = calibrated

    files = tmp_path / "images"
    files.mkdir()
    for i, pixels in enumerate(np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)):
        Image.fromarray(pixels, mode="L").save(files / f"{i}.png")
    out = {}
    for calibrated in ("true", "false"):
        out[calibrated] = tmp_path / f"{calibrated}.csv"
        code, err = run_cli(
            "predict-files", "--ckpt_path", mnist_run, files, "--output", out[calibrated], "--top_k", "10",
            "--calibrated", calibrated, "--no_progress", "--device", "cpu",
        )  # fmt: skip
        assert code == 0, err
        assert ("calibrated: " if calibrated == "true" else "not calibrated: ") in err
    with_t, without_t = probabilities_of(out["true"]), probabilities_of(out["false"])
    for row in with_t + without_t:
        assert sum(row) == pytest.approx(1, abs=1e-4)
    assert not np.allclose(with_t, without_t, atol=1e-5)


def test_a_folder_that_is_not_a_run_is_one_error_line(run_cli, tmp_path):
    code, err = run_cli("calibrate", tmp_path)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err


def test_a_temperature_fit_for_another_checkpoint_or_unreadable_is_not_used(mnist_run, tmp_path, capsys):
    trained = dataclasses.replace(load_trained(mnist_run), checkpoint_path=tmp_path / "checkpoints" / "best.ckpt")
    record = tmp_path / CALIBRATION_FILE
    record.write_text(json.dumps({"temperature": 2.0, "checkpoint": "checkpoints/other.ckpt"}))
    assert run_temperature(trained, calibrated=True) == 1.0
    assert "was fit for" in capsys.readouterr().err
    record.write_text(json.dumps({"temperature": 2.0, "checkpoint": "checkpoints/best.ckpt"}))
    assert run_temperature(trained, calibrated=True) == 2.0
    assert run_temperature(trained, calibrated=False) == 1.0
    record.write_text(json.dumps({"temperature": -1}))
    with pytest.raises(ConfigError, match="positive"):
        run_temperature(trained, calibrated=True)


def test_ensemble_uses_each_members_temperature_unless_told_not_to(calibrated, mnist_dir, test_split, tmp_path):
    run, _ = calibrated
    temperature = json.loads((run / CALIBRATION_FILE).read_text())["temperature"]
    raw_member = copied_checkpoint(run, tmp_path / "raw")  # the same weights, with no calibration.json
    images, labels = test_split
    logits = load_trained(run).logits(images)
    for flag in ("true", "false"):
        out = tmp_path / f"{flag}.json"
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            main(["ensemble", "--ckpt_path", str(run), str(raw_member), "--data.data_dir", str(mnist_dir),
                  "--calibrated", flag, "--output", str(out), "--device", "cpu"])  # fmt: skip
        result = json.loads(out.read_text())
        lines = stdout.getvalue().splitlines()
        first_t = temperature if flag == "true" else 1.0
        first, second = logits.div(first_t).softmax(1), logits.softmax(1)
        assert [row["temperature"] for row in result["members"]] == [temperature if flag == "true" else None, None]
        assert result["members"][0]["test_ece"] == pytest.approx(ece(logits, labels, first_t), abs=1e-5)
        assert result["members"][1]["test_ece"] == pytest.approx(ece(logits, labels), abs=1e-5)
        average = (first + second) / 2
        assert result["ensemble_test_ece"] == pytest.approx(probability_ece(average, labels), abs=1e-5)
        assert result["members"][0]["test_acc"] == result["members"][1]["test_acc"]
        assert lines[0].split()[-3:] == ["calibrated", "test/acc", "test/ece"]
        assert (f"T={temperature:.3f}" in lines[1]) == (flag == "true") and lines[2].split()[-3] == "no"
        assert lines[4].endswith(f"{result['ensemble_test_ece']:.4f}") and "test_ece" in result["stacking"]


def test_export_bakes_the_temperature_in_unless_told_not_to(calibrated, tmp_path, capsys):
    import onnxruntime

    run, _ = calibrated
    temperature = json.loads((run / CALIBRATION_FILE).read_text())["temperature"]
    pixels = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    logits = load_trained(run).logits(pixels)
    for flag, divisor in (("true", temperature), ("false", 1.0)):
        out = tmp_path / flag / "model.onnx"
        main(["export", "--ckpt_path", str(run), "--output", str(out), "--torchscript", "--calibrated", flag])
        assert ("not calibrated: " in capsys.readouterr().err) == (flag == "false")
        metadata = json.loads(out.with_suffix(".json").read_text())
        assert metadata["temperature"] == (temperature if flag == "true" else None)
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"images": (pixels.float() / 255).numpy()})
        assert np.abs(got - (logits / divisor).numpy()).max() < 1e-4
        scripted = torch.jit.load(str(out.with_suffix(".pt")))(pixels.float() / 255)
        assert torch.allclose(scripted, logits / divisor, atol=1e-4)


def test_bad_calibration_options_and_files_are_one_error_line(calibrated, mnist_dir, run_cli, tmp_path):
    run, _ = calibrated
    for command in (["calibrate", run, "--batch_size", "0"], ["ensemble", "--ckpt_path", run, "--calibrated", "yes"],
                    ["export", "--ckpt_path", run, "--calibrated", "maybe"]):  # fmt: skip
        code, err = run_cli(*command)
        assert code == 2 and err.startswith("error: ") and "hint: " in err, err
    broken = copied_checkpoint(run, tmp_path / "broken")
    (broken.parent / CALIBRATION_FILE).write_text(json.dumps({"temperature": 0}))
    code, err = run_cli("ensemble", "--ckpt_path", run, broken, "--data.data_dir", mnist_dir, "--device", "cpu")
    assert code == 2 and err.count("\n") == 1 and "must be a positive number" in err, err
