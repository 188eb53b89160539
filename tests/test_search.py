"""Hyper-parameter search: one run per trial, a summary sorted by the metric, pruning, resuming a killed search,
and one-line errors for bad search space files."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from lightning_cnn.errors import ConfigError
from lightning_cnn.experiments.runner import runs_folder
from lightning_cnn.tools.search import ReportToTrial, load_spec, override_args
from tests.helpers.faults import run_in_child, start_in_child
from tests.helpers.runs import QUICK, scalars

ROOT = Path(__file__).parent.parent
LENET5 = str(ROOT / "configs" / "mnist" / "lenet5.yaml")
SEARCH_QUICK = [*QUICK, "--trainer.max_epochs", "1", "--test_after_fit", "false"]
RANDOM_SPACE = {
    "base": [LENET5],
    "metric": "val/acc",
    "sampler": "random",
    "trials": 4,
    "space": {
        "model.optimizer.init_args.lr": {"type": "float", "low": "1e-4", "high": 0.03, "log": True},  # "1e-4": a str
        "data.batch_size": {"type": "categorical", "choices": [32, 64]},
    },
}


def write_space(folder: Path, spec: dict, name: str = "space.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def trial_states(search_dir: Path) -> list[TrialState]:
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{search_dir / 'study.db'}")
    return [t.state for t in study.trials]


def test_random_search_runs_every_trial_and_ranks_them(run_cli, mnist_dir, tmp_path):
    space = write_space(tmp_path, RANDOM_SPACE)
    code, err = run_cli("search", "--space", space, "--data.data_dir", mnist_dir,
                        "--trainer.default_root_dir", tmp_path, *SEARCH_QUICK)  # fmt: skip
    assert code == 0, err
    logs = tmp_path / "lightning_logs"
    runs = sorted(logs.glob("version_*"))
    assert len(runs) == 4
    search_dir = logs / "search_space"
    assert trial_states(search_dir) == [TrialState.COMPLETE] * 4
    rows = list(csv.DictReader((search_dir / "search.csv").open()))
    assert sorted(int(r["trial"]) for r in rows) == [0, 1, 2, 3]
    values = [float(r["val/acc"]) for r in rows]
    assert values == sorted(values, reverse=True)  # best first
    for row in rows:  # every row is its own run: the value TensorBoard holds, the values the run trained with
        run = Path(row["run_dir"])
        assert float(row["val/acc"]) == pytest.approx(scalars(run)["val/acc"][-1])
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["data"]["init_args"]["batch_size"] == int(row["data.batch_size"])
        lr = config["model"]["init_args"]["optimizer"]["init_args"]["lr"]
        assert lr == pytest.approx(float(row["model.optimizer.init_args.lr"]))
        assert yaml.safe_load((run / "trial.yaml").read_text())["trial"] == int(row["trial"])
    best = yaml.safe_load((search_dir / "best.yaml").read_text())
    assert best == {"model.optimizer.init_args.lr": pytest.approx(float(rows[0]["model.optimizer.init_args.lr"])),
                    "data.batch_size": int(rows[0]["data.batch_size"])}  # fmt: skip
    # best.yaml is a config: the base recipe plus it trains with the best values
    code, err = run_cli("fit", "--config", LENET5, "--config", search_dir / "best.yaml", "--data.data_dir", mnist_dir,
                        "--trainer.default_root_dir", tmp_path / "again", *QUICK,
                        "--trainer.fast_dev_run", "true")  # fmt: skip
    assert code == 0, err


def test_grid_search_tries_every_combination(run_cli, mnist_dir, tmp_path):
    space = {"data.batch_size": {"type": "categorical", "choices": [32, 64]},
             LR: {"type": "categorical", "choices": [0.003]}}  # fmt: skip
    spec = {**RANDOM_SPACE, "sampler": "grid", "space": space}
    del spec["trials"]  # a grid search runs the whole grid
    code, err = run_cli("search", "--space", write_space(tmp_path, spec), "--data.data_dir", mnist_dir,
                        "--trainer.default_root_dir", tmp_path, *SEARCH_QUICK)  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "lightning_logs" / "search_space" / "search.csv").open()))
    assert sorted(int(r["data.batch_size"]) for r in rows) == [32, 64]


def test_a_killed_search_resumes_without_redoing_finished_trials(run_cli, mnist_dir, tmp_path):
    space = write_space(tmp_path, RANDOM_SPACE)
    args = ["search", "--space", str(space), "--data.data_dir", str(mnist_dir), "--trainer.default_root_dir",
            str(tmp_path), *SEARCH_QUICK, "--trainer.callbacks+=tests.helpers.faults.SignalInRun"]  # fmt: skip
    child = run_in_child(*args)
    assert child.returncode == -9, child.stderr  # SIGKILL in the third trial's run (version_2)
    logs = tmp_path / "lightning_logs"
    search_dir = logs / "search_space"
    assert trial_states(search_dir) == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]
    finished = {p: p.stat().st_mtime_ns for run in ("version_0", "version_1") for p in (logs / run).rglob("*")}

    code, err = run_cli(*args)  # the same command again resumes
    assert code == 0, err
    assert "resuming" in err and "2 of 4 trials done" in err
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{search_dir / 'study.db'}")
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
                      TrialState.COMPLETE]  # fmt: skip
    assert study.trials[3].params == study.trials[2].params  # the killed trial ran again, with its values
    assert study.trials[3].user_attrs["retry_of"] == 2
    assert [t.user_attrs["run_dir"] for t in study.trials[3:]] == [str(logs / "version_3"), str(logs / "version_4")]
    assert sorted(p.name for p in logs.glob("version_*")) == [f"version_{i}" for i in range(5)]
    after = {p: p.stat().st_mtime_ns for run in ("version_0", "version_1") for p in (logs / run).rglob("*")}
    assert after == finished  # finished trials were not touched
    rows = list(csv.DictReader((search_dir / "search.csv").open()))
    assert [r["state"] for r in rows].count("complete") == 4


def test_two_workers_share_one_search_and_run_each_trial_once(mnist_dir, tmp_path):
    """Two search processes on one folder at once: 6 trials in all, each run by one of them in its own run folder."""
    space = write_space(tmp_path, {**RANDOM_SPACE, "trials": 6})
    args = ["search", "--space", space, "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path,
            *SEARCH_QUICK]  # fmt: skip
    workers = [start_in_child(*args) for _ in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    logs = tmp_path / "lightning_logs"
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{logs / 'search_space' / 'study.db'}")
    assert [t.state for t in study.trials].count(TrialState.RUNNING) == 0 and len(study.trials) == 6
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) == 6
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both workers ran trials
    run_dirs = [t.user_attrs["run_dir"] for t in study.trials]
    assert sorted(run_dirs) == [str(logs / f"version_{i}") for i in range(6)]  # a run folder of its own each
    recorded = sorted(yaml.safe_load((Path(run) / "trial.yaml").read_text())["trial"] for run in run_dirs)
    assert recorded == list(range(6))
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 6  # different values drawn by each
    rows = list(csv.DictReader((logs / "search_space" / "search.csv").open()))
    assert len(rows) == 6 and not list((logs / "search_space" / "workers").iterdir())  # workers cleaned up


def test_a_hopeless_trial_is_stopped_after_the_epoch_it_falls_below_the_median(tmp_path):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for value in (0.9, 0.8):  # two earlier trials at 0.9 and 0.8 after their first epoch
        trial = study.ask()
        trial.report(value, 0)
        study.tell(trial, value)
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics={"val/acc": torch.tensor(0.5)},
                              max_epochs=3, current_epoch=0, should_stop=False)  # fmt: skip
    reporter = ReportToTrial(study.ask(), "val/acc", tmp_path)
    reporter.on_validation_end(trainer, None)
    assert trainer.should_stop and reporter.pruned_at == 0
    good = SimpleNamespace(
        **{**vars(trainer), "should_stop": False, "callback_metrics": {"val/acc": torch.tensor(1.0)}}
    )
    reporter = ReportToTrial(study.ask(), "val/acc", tmp_path)
    reporter.on_validation_end(good, None)
    assert not good.should_stop and reporter.pruned_at is None
    last = SimpleNamespace(**{**vars(trainer), "should_stop": False, "current_epoch": 2})
    ReportToTrial(study.ask(), "val/acc", tmp_path).on_validation_end(last, None)
    assert not last.should_stop  # a trial at its last epoch has its result anyway: it completes


LR = "model.optimizer.init_args.lr"


def lr_range(**param: object) -> dict:
    """A space with one learning-rate entry."""
    return {"space": {LR: param}}


BAD_SPACES = [
    ({"space": {"data.batch_size": {"type": "choice"}}}, "space.data.batch_size: expected {type: float|int|categ"),
    (lr_range(type="float", low=0.1, high=0.01), f"space.{LR}: low (0.1) must be below high (0.01)"),
    (lr_range(type="float", low=0, high=1, log=True), f"space.{LR}: a log range needs low above 0"),
    (lr_range(type="float", low="small", high=1), f"space.{LR}: expected a number (float), got 'small'"),
    (lr_range(type="int", low=8, high=64, steps=8), f"space.{LR}: unknown field 'steps'"),
    ({"sampler": "grid"}, f"space.{LR}: the grid sampler needs {{type: categorical"),
    ({"sampler": "bayes"}, "sampler: expected one of grid, random, tpe, got 'bayes'"),
    ({"metric": "train/acc"}, "metric: expected a validation metric that runs log, one of val/loss, val/acc"),
    ({"metric": "val/accuracy"}, "metric: expected a validation metric that runs log, one of val/loss, val/acc"),
    ({"metric": "val/loss", "direction": "maximize"}, "direction: val/loss improves when it is minimized, not max"),
    ({"trails": 3}, "trails: unknown key; the keys are base, metric"),
    ({"base": ["nowhere.yaml"]}, "base: config file not found: nowhere.yaml"),
    ({"space": {LR + "r": {"type": "float", "low": 0.1, "high": 1}}}, "model.optimizer: Adam has no option 'lrr'"),
    ({"space": {"data.batch_size": {"type": "categorical", "choices": [0, 8]}}}, "data.batch_size must be at least 1"),
]


@pytest.mark.parametrize("change, message", BAD_SPACES, ids=[m.split(":")[0] for _, m in BAD_SPACES])
def test_a_bad_search_space_fails_in_one_line_naming_the_key(run_cli, tmp_path, change, message):
    space = write_space(tmp_path, {**RANDOM_SPACE, **change})
    code, err = run_cli("search", "--space", space, "--trainer.default_root_dir", tmp_path)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if not line.startswith("💡")]
    assert len(lines) == 1 and lines[0].startswith(f"error: search space {space}: "), err
    assert message in lines[0]
    assert not (tmp_path / "lightning_logs").exists()


def test_trials_on_the_command_line_replace_the_files_own_or_stand_in_for_it(tmp_path):
    without = {key: value for key, value in RANDOM_SPACE.items() if key != "trials"}
    assert load_spec(write_space(tmp_path, without), trials=3).trials == 3
    assert load_spec(write_space(tmp_path, {**RANDOM_SPACE, "trials": 5}), trials=2).trials == 2
    with pytest.raises(ConfigError, match="trials: expected a number of trials of 1 or more"):
        load_spec(write_space(tmp_path, without))


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "search").glob("*.yaml")), ids=lambda p: p.name)
def test_every_search_config_loads_and_its_keys_are_fit_options(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # base configs are named relative to the project folder
    spec = load_spec(path.relative_to(ROOT))
    for key, param in spec.space.items():
        for value in param.get("choices") or [param["low"], param["high"]]:
            base = [a for file in spec.base for a in ("--config", file)]
            runs_folder([*base, *override_args({key: value})], context=str(path))
