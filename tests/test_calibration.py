"""Calibration: test/ece and test/mce in metrics.json with the reliability diagram, ``calibrate``'s temperature
(fit on the validation split, never worse in NLL), and ``predict-files`` with and without it."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.calibration import CALIBRATION_FILE, fit_temperature, nll
from lightning_cnn.inference.trained import load_trained
from lightning_cnn.models.calibration import ReliabilityBins, calibration_metrics
from lightning_cnn.run_folder import resolve_checkpoint
from lightning_cnn.tools.predict_files import run_temperature
from tests.helpers.runs import fit_tiny_run


@pytest.fixture(scope="module")
def mnist_run(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = ["--data", "MNISTDataModule", "--data.data_dir", str(mnist_dir), "--data.download", "false"]
    return fit_tiny_run(tmp_path_factory.mktemp("calibration"), data)


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


def test_calibrate_then_predict_files_with_and_without_the_temperature(mnist_run, mnist_dir, run_cli, tmp_path):
    code, err = run_cli("calibrate", mnist_run, "--device", "cpu")
    assert code == 0, err
    record = json.loads((mnist_run / CALIBRATION_FILE).read_text())
    assert record["temperature"] > 0 and record["temperature"] != 1.0
    assert record["val_nll_after"] <= record["val_nll_before"] + 1e-6
    assert 0 <= record["val_ece_after"] <= 1 and record["val_images"] > 0

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
