"""k-fold cross-validation: disjoint folds that cover the training set, one run per fold, a correct summary."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import torch
import yaml

from lightning_cnn.data import MNISTDataModule
from lightning_cnn.data.base import split_indices
from tests.helpers.faults import run_in_child
from tests.helpers.runs import QUICK, scalars
from tests.helpers.writers import write_image_folder

KFOLD_QUICK = [*QUICK, "--trainer.max_epochs", "1", "--test_after_fit", "false"]


@pytest.mark.parametrize("total, folds", [(1200, 3), (103, 5), (10, 10)])
def test_folds_are_disjoint_and_cover_the_training_set(total, folds):
    vals = []
    for fold in range(folds):
        train, val = split_indices(total, 0, seed=7, fold=fold, num_folds=folds)
        assert set(train.tolist()).isdisjoint(val.tolist())
        assert sorted(train.tolist() + val.tolist()) == list(range(total))
        assert total // folds <= len(val) <= total // folds + 1
        vals.append(val)
    everything = torch.cat(vals).tolist()
    assert sorted(everything) == list(range(total))  # each image validates in exactly one fold
    other_seed = split_indices(total, 0, seed=8, fold=0, num_folds=folds)[1]
    assert other_seed.tolist() != vals[0].tolist()


def test_without_a_fold_the_val_size_split_is_unchanged():
    train, val = split_indices(1000, 0.25, seed=42)
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(42))  # the split before folds existed
    assert val.tolist() == order[:250].tolist() and train.tolist() == order[250:].tolist()


def test_data_module_folds_split_the_images(mnist_dir):
    seen = []
    for fold in range(3):
        data = MNISTDataModule(data_dir=str(mnist_dir), fold=fold, num_folds=3)
        data.setup("fit")
        assert len(data.train_set) + len(data.val_set) == 1200 and len(data.val_set) == 400
        train = {bytes(image.numpy()) for image in data.train_set.images}
        val = {bytes(image.numpy()) for image in data.val_set.images}
        assert train.isdisjoint(val)
        seen.append(val)
    assert len(set.union(*seen)) == sum(len(v) for v in seen) == 1200


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data.fold", "3", "--data.num_folds", "3"], "error: data.fold must be 0 to 2 (data.num_folds=3), got 3"),
        (["--data.fold", "-1"], "error: data.fold must be 0 to 4 (data.num_folds=5), got -1"),
        (["--data.fold", "0", "--data.num_folds", "1"], "error: data.num_folds must be at least 2, got 1"),
    ],
)
def test_bad_fold_options_fail_in_one_line(run_cli, mnist_dir, tmp_path, args, message):
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path, *QUICK, *args)
    assert code == 2  # a configuration mistake, as the parser's
    assert [line for line in err.splitlines() if line.startswith("error:")] == [message]
    assert not (tmp_path / "lightning_logs").exists()


def test_more_folds_than_images_fail_in_one_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))
    write_image_folder(tmp_path / "images", 40, seed=3)
    code, err = run_cli("kfold", "--folds", 50, "--data", "ImageFolderDataModule", "--data.root", tmp_path / "images",
                        "--data.val_size", 0, "--trainer.default_root_dir", tmp_path, *KFOLD_QUICK)  # fmt: skip
    assert code == 2
    assert err.strip().splitlines()[-1] == "error: data.num_folds=50 is more than the 40 training images"


def test_folds_beyond_a_hundred_fail_before_any_run(run_cli, tmp_path):
    code, err = run_cli("kfold", "--folds", 1000000000000, "--trainer.default_root_dir", tmp_path)
    assert code == 2
    assert err.strip() == "error: --folds must be from 2 to 100 (one fit per fold), got 1000000000000"


def test_three_fold_cross_validation_leaves_three_runs_and_a_summary(run_cli, mnist_dir, tmp_path):
    code, err = run_cli("kfold", "--folds", 3, "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path,
                        *KFOLD_QUICK)  # fmt: skip
    assert code == 0, err
    logs = tmp_path / "lightning_logs"
    runs = sorted(logs.glob("version_*"))
    assert [r.name for r in runs] == ["version_0", "version_1", "version_2"]
    (summary,) = logs.glob("kfold_*")
    record = json.loads((summary / "kfold.json").read_text())
    assert record["complete"] and record["folds"] == 3
    for fold, (run, entry) in enumerate(zip(runs, record["runs"], strict=True)):
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["data"]["init_args"]["fold"] == fold and config["data"]["init_args"]["num_folds"] == 3
        assert entry["fold"] == fold and entry["run_dir"] == str(run)
        curves = scalars(run)  # TensorBoard's own record of the run
        assert entry["metrics"]["val/acc"] == pytest.approx(curves["val/acc"][-1])
        assert entry["metrics"]["val/loss"] == pytest.approx(curves["val/loss"][-1])
    accs = [scalars(run)["val/acc"][-1] for run in runs]
    assert record["mean"]["val/acc"] == pytest.approx(statistics.fmean(accs))
    assert record["std"]["val/acc"] == pytest.approx(statistics.stdev(accs))
    rows = list(csv.DictReader((summary / "kfold.csv").open()))
    assert [r["fold"] for r in rows] == ["0", "1", "2", "mean", "std"]
    assert float(rows[3]["val/acc"]) == pytest.approx(statistics.fmean(accs))
    assert float(rows[4]["val/loss"]) == pytest.approx(statistics.stdev(scalars(r)["val/loss"][-1] for r in runs))


def test_an_interrupted_cross_validation_resumes_with_only_the_missing_folds(run_cli, mnist_dir, tmp_path):
    kill = ["--trainer.callbacks+=tests.helpers.faults.SignalInRun", "--trainer.callbacks.version", "1",
            "--trainer.callbacks.once", str(tmp_path / "killed")]  # fmt: skip
    args = ["kfold", "--folds", "3", "--data.data_dir", str(mnist_dir), "--trainer.default_root_dir", str(tmp_path),
            *KFOLD_QUICK, *kill]  # fmt: skip
    child = run_in_child(*args)
    assert child.returncode == -9, child.stderr  # SIGKILL as fold 1 (version_1) starts training
    logs = tmp_path / "lightning_logs"
    (folder,) = logs.glob("kfold_*")
    assert f"kfold --resume {folder}" in child.stderr  # the progress line says how to go on
    first = json.loads((folder / "kfold.json").read_text())
    assert not first["complete"] and [run["fold"] for run in first["runs"]] == [0]
    fold0 = {p: p.stat().st_mtime_ns for p in (logs / "version_0").rglob("*")}

    code, err = run_cli("kfold", "--resume", folder)  # the recorded fit options apply
    assert code == 0, err
    assert "resuming" in err and "1 of 3 folds done" in err
    record = json.loads((folder / "kfold.json").read_text())
    assert record["complete"] and [run["fold"] for run in record["runs"]] == [0, 1, 2]
    # the killed fold's folder, without a checkpoint, is gone: one run folder per fold
    assert [run["run_dir"] for run in record["runs"]] == [
        str(logs / v) for v in ("version_0", "version_1", "version_2")
    ]
    assert sorted(p.name for p in logs.glob("version_*")) == ["version_0", "version_1", "version_2"]
    assert f"kfold: removed {logs / 'version_1'}, left by fold 1 before its first checkpoint" in err
    assert record["runs"][0] == first["runs"][0]  # the finished fold is kept, not run again
    assert {p: p.stat().st_mtime_ns for p in (logs / "version_0").rglob("*")} == fold0
    for entry in record["runs"]:
        config = yaml.safe_load((Path(entry["run_dir"]) / "config.yaml").read_text())
        assert config["data"]["init_args"]["fold"] == entry["fold"]
    accs = [entry["metrics"]["val/acc"] for entry in record["runs"]]
    assert record["mean"]["val/acc"] == pytest.approx(statistics.fmean(accs))
    assert len(list(logs.glob("kfold_*"))) == 1  # no second summary folder


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--folds", "4"], "has 3 folds, not 4; leave --folds out"),
        (["--trainer.max_epochs", "2"], "was run with other fit options"),
    ],
)
def test_resume_refuses_other_folds_or_fit_options(run_cli, tmp_path, extra, message):
    folder = tmp_path / "kfold_x"
    folder.mkdir()
    runs = [{"fold": 0, "run_dir": "r", "metrics": {"val/acc": 0.5}}]
    (folder / "kfold.json").write_text(
        json.dumps({"folds": 3, "fit_args": ["--trainer.max_epochs", "1"], "runs": runs})
    )
    code, err = run_cli("kfold", "--resume", folder, *extra)
    assert code == 2
    assert message in err.strip().splitlines()[-1]
    code, err = run_cli("kfold", "--resume", tmp_path / "nowhere")
    assert code == 2 and "kfold.json not found" in err


def test_kfold_refuses_a_fold_of_its_own(run_cli, tmp_path):
    code, err = run_cli("kfold", "--folds", 3, "--data.fold", 1, "--trainer.default_root_dir", tmp_path)
    assert code == 2
    assert err.strip() == "error: kfold sets --data.fold for every fold itself; leave it out and give --folds N"
