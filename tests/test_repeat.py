"""Repeated runs: one tested run per seed, a correct min / mean ± std / max table, resuming only missing seeds."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml

from lightning_cnn.tools.runs import group_summary, list_runs

REPEAT_QUICK = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu", "--data.val_size", "0.2",
                "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
                "--trainer.limit_test_batches", "2", "--preview.num_images", "0"]  # fmt: skip


def test_two_seeds_leave_two_tested_runs_a_summary_and_resume_only_the_missing_seed(run_cli, mnist_dir, tmp_path):
    code, err = run_cli("repeat", "--seeds", 7, 3, "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path,
                        *REPEAT_QUICK)  # fmt: skip
    assert code == 0, err
    logs = tmp_path / "lightning_logs"
    runs = sorted(logs.glob("version_*"))
    assert [r.name for r in runs] == ["version_0", "version_1"]
    (summary,) = logs.glob("repeat_*")
    record = json.loads((summary / "repeat.json").read_text())
    assert record["complete"] and record["seeds"] == [7, 3]
    assert [entry["seed"] for entry in record["runs"]] == [7, 3]  # in the order given
    for seed, run, entry in zip((7, 3), runs, record["runs"], strict=True):
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["seed_everything"] == seed and config["test_after_fit"] is True
        assert entry["run_dir"] == str(run)
        tested = json.loads((run / "metrics.json").read_text())  # what the run's own test wrote
        assert entry["metrics"]["test/acc"] == pytest.approx(tested["test/acc"])
        assert all(name.startswith("test/") for name in entry["metrics"])
    for name in ("test/acc", "test/loss"):
        values = [entry["metrics"][name] for entry in record["runs"]]
        assert record["mean"][name] == pytest.approx(statistics.fmean(values))
        assert record["std"][name] == pytest.approx(statistics.stdev(values))
        assert record["min"][name] == min(values) and record["max"][name] == max(values)
    rows = list(csv.DictReader((summary / "repeat.csv").open()))
    assert [r["seed"] for r in rows] == ["7", "3", "min", "mean", "std", "max"]
    assert float(rows[3]["test/acc"]) == pytest.approx(record["mean"]["test/acc"])
    # `lightning-cnn runs` tells the two runs apart by their seed, groups them and gives their spread
    listed = list_runs(tmp_path)
    assert [row["differs"] for row in listed] == ["seed_everything=7", "seed_everything=3"]
    assert [row["group"] for row in listed] == [1, 1]
    (line,) = group_summary(listed)
    mean = statistics.fmean(row["test/acc"] for row in listed)  # of the table's (rounded) test/acc
    assert line.startswith("group 1: versions 0, 1, the same options but for the seed;") and f"{mean:.4f}" in line

    # an interrupted repeat: the record holds seed 7 only; resuming runs seed 3 alone, with the recorded options
    first = record["runs"][0]
    (summary / "repeat.json").write_text(json.dumps({**record, "complete": False, "runs": [first]}))
    run0 = {p: p.stat().st_mtime_ns for p in runs[0].rglob("*")}
    left = logs / "version_2"  # what a run of seed 3 killed before its first checkpoint leaves
    left.mkdir()
    (left / "config.yaml").write_text("seed_everything: 3\n")
    code, err = run_cli("repeat", "--resume", summary)
    assert code == 0, err
    assert "1 of 2 seeds done" in err and "seed 7" not in err and "seed 3" in err
    assert f"repeat: removed {left}, left by seed 3 before its first checkpoint" in err
    resumed = json.loads((summary / "repeat.json").read_text())
    assert resumed["complete"] and [entry["seed"] for entry in resumed["runs"]] == [7, 3]
    assert resumed["runs"][0] == first and resumed["runs"][1]["run_dir"] == str(logs / "version_2")
    assert {p: p.stat().st_mtime_ns for p in runs[0].rglob("*")} == run0  # the finished run is not run again
    assert yaml.safe_load((logs / "version_2" / "config.yaml").read_text())["seed_everything"] == 3
    assert sorted(p.name for p in logs.glob("version_*")) == ["version_0", "version_1", "version_2"]
    assert len(list(logs.glob("repeat_*"))) == 1  # no second summary folder


def test_without_a_test_the_table_holds_val_metrics(run_cli, mnist_dir, tmp_path):
    code, err = run_cli("repeat", "--seeds", 1, "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path,
                        *REPEAT_QUICK, "--test_after_fit", "false")  # fmt: skip
    assert code == 0, err
    (summary,) = (tmp_path / "lightning_logs").glob("repeat_*")
    record = json.loads((summary / "repeat.json").read_text())
    assert record["runs"][0]["metrics"] and all(name.startswith("val/") for name in record["runs"][0]["metrics"])
    assert record["std"]["val/acc"] == 0.0  # one run: no spread


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "error: lightning-cnn repeat: give --seeds, e.g. --seeds 42 1 2 3 (or --resume FOLDER)"),
        (["--seeds", "1", "2", "1"], "error: --seeds gives 1 twice; each seed trains one run"),
        (["--seeds", "1", "--seed_everything", "3"],
         "error: repeat sets --seed_everything for every run itself; leave it out and give --seeds"),
        (["--seeds", "1", "--seed_everything=3"],
         "error: repeat sets --seed_everything for every run itself; leave it out and give --seeds"),
        (["--seeds"], "error: lightning-cnn repeat: argument --seeds: expected at least one argument"),
        (["--seeds", "x"], "error: lightning-cnn repeat: argument --seeds: invalid int value: 'x'"),
        (["--seeds", "1", "--workers", "0"], "error: lightning-cnn repeat: --workers must be at least 1, got 0"),
    ],
)  # fmt: skip
def test_bad_options_fail_in_one_line(run_cli, tmp_path, args, message):
    code, err = run_cli("repeat", *args, "--trainer.default_root_dir", tmp_path)
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("error:")] == [message]
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seeds", "1", "3"], "repeats seeds 1 2, not 1 3; leave --seeds out"),
        (["--trainer.max_epochs", "2"], "was run with other fit options"),
    ],
)
def test_resume_refuses_other_seeds_or_fit_options(run_cli, tmp_path: Path, extra, message):
    folder = tmp_path / "repeat_x"
    folder.mkdir()
    runs = [{"seed": 1, "run_dir": "r", "metrics": {"test/acc": 0.5}}]
    (folder / "repeat.json").write_text(
        json.dumps({"seeds": [1, 2], "fit_args": ["--trainer.max_epochs", "1"], "runs": runs})
    )
    code, err = run_cli("repeat", "--resume", folder, *extra)
    assert code == 2
    assert message in err.strip().splitlines()[-1]
    code, err = run_cli("repeat", "--resume", tmp_path / "nowhere")
    assert code == 2 and "repeat.json not found" in err


def test_runs_groups_only_runs_that_differ_in_their_seed_alone():
    from lightning_cnn.tools.runs import seed_groups

    def config(seed: int, lr: float) -> dict:
        return {"seed_everything": seed, "model": {"init_args": {"lr": lr}}}

    configs = [config(1, 0.1), config(2, 0.1), config(1, 0.2), config(3, 0.1), config(2, 0.2), config(1, 0.3), {}]
    assert seed_groups(configs) == [[0, 1, 3], [2, 4]]  # lr 0.3 ran once; an empty config belongs nowhere
    assert seed_groups([config(1, 0.1), config(1, 0.1)]) == []  # the same seed twice is a rerun, not a repeat


def test_two_workers_train_the_seeds_at_once_into_their_own_runs(run_cli, mnist_dir, tmp_path):
    code, err = run_cli("repeat", "--seeds", 7, 3, "--workers", 2, "--data.data_dir", mnist_dir,
                        "--trainer.default_root_dir", tmp_path, *REPEAT_QUICK)  # fmt: skip
    assert code == 0, err
    assert "2 runs, 2 at a time, seeds 7 3" in err
    logs = tmp_path / "lightning_logs"
    record = json.loads(next(logs.glob("repeat_*/repeat.json")).read_text())
    assert record["complete"] and [entry["seed"] for entry in record["runs"]] == [7, 3]  # the order given
    assert len({entry["run_dir"] for entry in record["runs"]}) == 2
    for entry in record["runs"]:
        run = Path(entry["run_dir"])
        assert yaml.safe_load((run / "config.yaml").read_text())["seed_everything"] == entry["seed"]
        tested = json.loads((run / "metrics.json").read_text())
        assert entry["metrics"]["test/acc"] == pytest.approx(tested["test/acc"])
