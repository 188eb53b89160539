"""Loggers: TensorBoard, CSV, MLflow (local file store) and W&B (offline) in one run and one run folder, each
with the report; run names and tags; resuming; the ``runs`` table; a missing optional package."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import logging
import os
from pathlib import Path

import pytest
import yaml

from benchmarks.logged import csv_series, mlflow_run, wandb_offline_run
from lightning_cnn.__main__ import main
from tests.helpers.runs import QUICK, scalars
from tests.helpers.writers import write_two_classes

CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline with its settings and caches in the test's folder; MLflow's local file store allowed."""
    for package in ("mlflow", "wandb"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install 'lightning-cnn[loggers]')")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def all_loggers() -> list[str]:
    """The four logger fragments, MLflow first: the run folder must not follow the first logger's store."""
    names = ("mlflow", "tensorboard", "csv", "wandb")
    return [arg for name in names for arg in ("--config", CONFIGS / "logger" / f"{name}.yaml")]


def test_every_logger_gets_the_same_curves_the_report_and_the_run_name(
    mnist_dir, tmp_path, run_cli, offline, capsys, caplog
):
    root = tmp_path / "runs"
    common = ["--model", "LeNet5", "--data.data_dir", mnist_dir, *QUICK, "--trainer.default_root_dir", root,
              "--trainer.limit_train_batches", "4", "--preview.num_images", "8", "--report.num_images", "8",
              "--test_after_fit", "true", *all_loggers()]  # fmt: skip
    code, err = run_cli("fit", *common, "--trainer.max_epochs", "1", "--run_name", "lenet-a", "--tags", "[base, x1]")
    assert code == 0, err

    # one run folder, with everything the run keeps, whatever logger came first
    (run,) = (root / "lightning_logs").iterdir()
    assert run.name == "version_0"
    assert {"config.yaml", "metrics.json", "confusion_matrix.png", "metrics.csv", "hparams.yaml"} <= {
        p.name for p in run.iterdir()
    }
    assert (run / "checkpoints" / "last.ckpt").is_file() and list(run.glob("events.out.tfevents.*"))
    assert yaml.safe_load((run / "config.yaml").read_text())["run_name"] == "lenet-a"
    report = json.loads((run / "metrics.json").read_text())
    assert (report["run_name"], report["tags"]) == ("lenet-a", ["base", "x1"])
    assert "run_name: lenet-a" in (run / "hparams.yaml").read_text().splitlines()

    # the same val/acc in all four, read back with each logger's own files
    tensorboard = scalars(run)["val/acc"]
    assert len(tensorboard) == 1
    assert csv_series(run, "val/acc") == pytest.approx(tensorboard)
    mlflow, client = mlflow_run(root)
    assert [m.value for m in client.get_metric_history(mlflow.info.run_id, "val/acc")] == pytest.approx(tensorboard)
    wandb = wandb_offline_run(root)
    assert wandb["history"]["val/acc"] == pytest.approx(tensorboard)

    # the report's images, files and final metrics in each logger's own way
    assert {p.name.split("_step")[0] for p in (run / "images").iterdir()} == {
        "train_first_batch", "val_predictions", "test_confusion_matrix", "test_reliability"
    }  # fmt: skip
    artifacts = {a.path for a in client.list_artifacts(mlflow.info.run_id)}
    report_images = {"confusion_matrix.png", "reliability.png"}
    assert {"config.yaml", "metrics.json", *report_images, "val", "test", "train"} <= artifacts
    assert mlflow.data.params["lr_scheduler_monitor"] == "val/loss"
    assert mlflow.data.metrics["test/acc"] == pytest.approx(report["test/acc"])
    assert mlflow.info.run_name == "lenet-a" and {"base", "x1"} <= set(mlflow.data.tags)
    assert (wandb["name"], wandb["tags"]) == ("lenet-a", ["base", "x1"])
    assert wandb["summary"]["test/acc"] == pytest.approx(report["test/acc"])
    assert wandb["summary"]["val/acc_best"] == pytest.approx(max(tensorboard))
    assert {"run_name", "tags", "num_classes"} <= wandb["config"]
    report_files = ["confusion_matrix.png", "metrics.json", "reliability.png"]
    assert wandb["artifacts"] == {"config": ["config.yaml"], "report": report_files}
    assert {"val/predictions", "test/confusion_matrix", "test/reliability", "train/first_batch"} <= {
        key.rsplit("/", 1)[0] for key in wandb["summary"] if key.endswith("/_type")
    }

    # `--ckpt_path last` goes on in the same folder: all curves continue there, metrics.csv keeps epoch 1
    caplog.set_level(logging.INFO)
    code, err = run_cli("fit", *common, "--trainer.max_epochs", "2", "--ckpt_path", "last", "--run_name", "lenet-a")
    assert code == 0, err
    assert [p.name for p in (root / "lightning_logs").iterdir()] == ["version_0"]
    assert (run / "config_resumed_1.yaml").is_file()
    assert len(csv_series(run, "val/acc")) == 2 and len(scalars(run)["val/acc"]) == 2
    # ... and in the same MLflow run and W&B run (an offline W&B run resumed is a second file with the same id);
    # MLflow params cannot change, so the tags left out this time keep their first value there, and it says so
    assert "keeps its first values of tags" in caplog.text
    mlflow, client = mlflow_run(root)
    history = client.get_metric_history(mlflow.info.run_id, "val/acc")
    assert [m.value for m in history] == pytest.approx(scalars(run)["val/acc"])
    offline_runs = sorted((root / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2 and len({p.name.rsplit("-", 1)[1] for p in offline_runs}) == 1

    # the runs table: name, tags, epochs, the best val/acc recorded in last.ckpt, and test/acc of metrics.json
    capsys.readouterr()
    main(["runs", str(root), "--csv"])
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    report = json.loads((run / "metrics.json").read_text())
    assert (row["version"], row["name"], row["tags"], row["model"], row["data"], row["epochs"]) == (
        "0", "lenet-a", "base, x1", "LeNet5", "MNISTDataModule", "2"
    )  # fmt: skip
    assert float(row["best val/acc"]) == pytest.approx(max(scalars(run)["val/acc"]), abs=1e-4)
    assert float(row["test/acc"]) == pytest.approx(report["test/acc"], abs=1e-4)


def test_a_missing_logger_package_is_one_line_with_the_pip_command(mnist_dir, tmp_path, run_cli, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, *QUICK, "--trainer.default_root_dir", tmp_path,
        "--config", CONFIGS / "logger" / "mlflow.yaml",
    )  # fmt: skip
    assert code == 1
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "mlflow" in line and "pip install 'lightning-cnn[loggers]'" in line, err
    assert not (tmp_path / "lightning_logs").exists()


def test_the_runs_tool_names_a_root_without_runs(tmp_path, run_cli):
    code, err = run_cli("runs", tmp_path)
    assert code == 2 and err.strip() == (
        f"error: runs: no lightning_logs folder under {tmp_path}; give the --trainer.default_root_dir of runs"
    )


def test_each_run_in_one_process_keeps_its_own_mlflow_store(mnist_dir, tmp_path, run_cli, offline):
    # MLflow exports the store it opens as MLFLOW_TRACKING_URI: a later fit in the same process (a notebook, a
    # benchmark) must still choose its own store, beside its own runs
    for root in (tmp_path / "a", tmp_path / "b"):
        code, err = run_cli(
            "fit", "--model", "LeNet5", "--data.data_dir", mnist_dir, *QUICK, "--trainer.default_root_dir", root,
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--preview.num_images", "0",
            "--config", CONFIGS / "logger" / "mlflow.yaml",
        )  # fmt: skip
        assert code == 0, err
        mlflow_run(root)  # one run, in this root's store
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_a_resumed_run_whose_mlflow_run_was_deleted_starts_a_new_one(mnist_dir, tmp_path, run_cli, offline, caplog):
    def fit(epochs: int, *extra: str) -> None:
        code, err = run_cli(
            "fit", "--model", "LeNet5", "--data.data_dir", mnist_dir, *QUICK, "--trainer.default_root_dir", tmp_path,
            "--trainer.max_epochs", epochs, "--trainer.limit_train_batches", "2", "--preview.num_images", "0",
            "--config", CONFIGS / "logger" / "mlflow.yaml", *extra,
        )  # fmt: skip
        assert code == 0, err

    fit(1)
    first, client = mlflow_run(tmp_path)
    client.delete_run(first.info.run_id)
    caplog.set_level(logging.INFO)
    fit(2, "--ckpt_path", "last")
    assert f"MLflow run {first.info.run_id} is no longer in" in caplog.text
    resumed, _ = mlflow_run(tmp_path)  # the one run that is not deleted
    assert resumed.info.run_id != first.info.run_id and "val/acc" in resumed.data.metrics


@pytest.mark.parametrize("replace", [False, True])
def test_a_logger_fragment_adds_its_logger_to_tensorboard_and_an_option_replaces_it(
    run_cli, mnist_dir, tmp_path, replace
):
    chosen = ["--trainer.logger", "CSVRunLogger"] if replace else ["--config", CONFIGS / "logger" / "csv.yaml"]
    twice = ["--config", CONFIGS / "logger" / "tensorboard.yaml"]  # the default's logger again: still one
    data = ["--data.data_dir", mnist_dir, *QUICK, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]
    code, err = run_cli("fit", *twice, *chosen, *data, "--trainer.default_root_dir", tmp_path)
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    assert (run / "metrics.csv").is_file()
    events = list(run.glob("events.out.tfevents.*"))
    assert len(events) == (0 if replace else 1), events


def test_a_two_class_run_gives_every_logger_its_auroc_and_curves(tmp_path, run_cli, offline, monkeypatch):
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))
    folder = write_two_classes(tmp_path / "two_classes", 24)
    root = tmp_path / "runs"
    code, err = run_cli(
        "fit", "--model", "LeNet5", "--data", "ImageFolderDataModule", "--data.root", folder,
        "--data.test_size", "0.25", "--data.val_size", "0.25", *QUICK, "--trainer.max_epochs", "1",
        "--trainer.default_root_dir", root, "--test_after_fit", "true", *all_loggers(),
    )  # fmt: skip
    assert code == 0, err
    (run,) = (root / "lightning_logs").iterdir()
    report = json.loads((run / "metrics.json").read_text())
    assert 0 <= report["test/auroc"] <= 1 and 0 <= report["test/auprc"] <= 1
    assert scalars(run)["test/auroc"] == pytest.approx([report["test/auroc"]])
    assert csv_series(run, "test/auroc") == pytest.approx([report["test/auroc"]])
    mlflow, client = mlflow_run(root)
    assert mlflow.data.metrics["test/auroc"] == pytest.approx(report["test/auroc"])
    assert {"roc.png", "pr.png"} <= {a.path for a in client.list_artifacts(mlflow.info.run_id)}
    wandb = wandb_offline_run(root)
    assert wandb["summary"]["test/auroc"] == pytest.approx(report["test/auroc"])
    assert {"roc.png", "pr.png"} <= set(wandb["artifacts"]["report"])
    assert {"test_roc", "test_pr"} <= {p.name.split("_step")[0] for p in (run / "images").iterdir()}
