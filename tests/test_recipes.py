"""The recipes ship inside the package: ``--config mnist/lenet5.yaml`` works from any folder, ``configs/...`` from a
clone is the same file, and ``lightning-cnn recipes`` lists them with the accuracy make results measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.results import measured_recipes
from lightning_cnn import config_files
from lightning_cnn.config_files import PACKAGED, packaged_config, packaged_recipes, with_packaged_configs
from lightning_cnn.tools.recipes import MEASURED, recipe_rows
from tests.helpers.runs import QUICK

ROOT = Path(__file__).resolve().parents[1]


def test_the_clones_configs_folder_is_the_packaged_one_not_a_copy():
    assert (ROOT / "configs").resolve() == PACKAGED.resolve()


@pytest.mark.parametrize("name", ["mnist/lenet5.yaml", "configs/mnist/lenet5.yaml", "search/lenet5_lr.yaml"])
def test_a_relative_path_missing_here_names_the_packaged_file(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    assert packaged_config(name) == PACKAGED / name.removeprefix("configs/")
    assert with_packaged_configs(["fit", "--config", name]) == [
        "fit",
        "--config",
        str(PACKAGED / name.split("configs/")[-1]),
    ]


@pytest.mark.parametrize("name", ["nothing/here.yaml", "../configs/mnist/lenet5.yaml", "mnist", ""])
def test_a_path_that_names_no_packaged_file_is_left_for_the_missing_file_error(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    assert packaged_config(name) is None
    assert with_packaged_configs(["--config", name]) == ["--config", name]


def test_a_file_in_the_current_folder_wins_over_the_packaged_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "lenet5.yaml").write_text("trainer:\n  max_epochs: 1\n")
    assert with_packaged_configs(["--config=mnist/lenet5.yaml"]) == ["--config=mnist/lenet5.yaml"]


def test_fit_from_another_folder_takes_the_packaged_recipe_and_says_so_once(run_cli, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config_files, "_announced", set())  # said once a process: the tests share one
    args = ["--data.data_dir", mnist_dir, *QUICK, "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches"]
    args += ["1", "--trainer.limit_test_batches", "1", "--trainer.max_epochs", "1"]
    code, err = run_cli("fit", "--config", "mnist/lenet5.yaml", *args)
    assert code == 0, err
    said = [line for line in err.splitlines() if "packaged recipe" in line]
    assert said == [
        f"mnist/lenet5.yaml: not in this folder; using the packaged recipe {PACKAGED / 'mnist/lenet5.yaml'}"
    ]
    assert (tmp_path / "lightning_logs" / "version_0" / "metrics.json").is_file()


def test_a_search_space_and_its_base_configs_come_from_the_package(tmp_path, monkeypatch):
    from lightning_cnn.tools.search import load_spec

    monkeypatch.chdir(tmp_path)
    spec = load_spec(Path(config_files.find_config("search/lenet5_lr.yaml")), None)
    assert spec.base == [str(PACKAGED / "mnist" / "lenet5.yaml")]


def test_the_recipes_tool_lists_every_recipe_with_its_measured_accuracy(capsys):
    from lightning_cnn.tools.recipes import main

    main([])
    out = capsys.readouterr().out
    rows = {row["recipe"]: row for row in recipe_rows()}
    assert set(rows) == set(packaged_recipes()) and all(name in out for name in rows)
    assert rows["mnist/lenet5.yaml"]["model"] == "LeNet5" and rows["mnist/lenet5.yaml"]["data"] == "MNISTDataModule"
    lowest = json.loads(MEASURED.read_text())["mnist/lenet5.yaml"]["test_acc"]
    assert f"{100 * lowest:.2f} %" in rows["mnist/lenet5.yaml"]["test accuracy"]


def test_the_packaged_accuracies_are_the_ones_make_results_measured():
    results = json.loads((ROOT / "benchmarks" / "results" / "cpu.json").read_text())["parts"]
    assert json.loads(MEASURED.read_text()) == measured_recipes(results)
    assert set(measured_recipes(results)) <= set(packaged_recipes())


def test_nothing_in_the_package_reads_files_relative_to_the_source_tree():
    # a wheel holds the package alone: a path that climbs out of it (to configs/, benchmarks/) is not there
    for path in (ROOT / "lightning_cnn").rglob("*.py"):
        for line in path.read_text().splitlines():
            climbs = "__file__" in line and ("parents[" in line or ".parent.parent" in line or '"..' in line)
            assert not climbs, f"{path.relative_to(ROOT)} climbs out of the package: {line.strip()}"
