"""What a new user with their own files tried and tripped over: each test is named for what they did."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers.runs import QUICK, fit_tiny_run
from tests.test_small_data import write_classes

TINY = [*QUICK, "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]


@pytest.fixture(scope="module")
def trained(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_tiny_run(tmp_path_factory.mktemp("runs"), ["--data.data_dir", str(mnist_dir)])


def test_kfold_on_a_runs_own_config_yaml(run_cli, trained, tmp_path):
    root = ["--trainer.default_root_dir", tmp_path]
    code, err = run_cli("kfold", "--folds", "2", "--config", trained / "config.yaml", *TINY, *root)
    assert code == 0, err
    assert len(list((tmp_path / "lightning_logs").glob("version_*"))) == 2


def test_search_with_a_runs_own_config_yaml_as_its_base(run_cli, trained, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(
        f"base: [{trained / 'config.yaml'}]\nsampler: random\ntrials: 1\n"
        "space:\n  model.optimizer.init_args.lr: {type: float, low: 0.001, high: 0.01}\n"
    )
    code, err = run_cli("search", "--space", space, *TINY, "--trainer.default_root_dir", tmp_path)
    assert code == 0, err


@pytest.mark.parametrize(
    ("module_text", "expected"),
    [
        (None, "cannot import my_models.TinyNet: No module named 'my_models'; run from the folder that holds it"),
        ("import a_package_not_installed\n", "No module named 'a_package_not_installed' (imported by my_models)"),
        ("raise RuntimeError('a bug in my module')\n", "importing my_models raised RuntimeError: a bug in my module"),
    ],
)
def test_training_my_own_model_whose_module_does_not_import(run_cli, tmp_path, monkeypatch, module_text, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    if module_text is not None:
        (tmp_path / "my_models.py").write_text(module_text)
    code, err = run_cli("fit", "--model", "my_models.TinyNet", *QUICK)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert errors[0].startswith("error: model: ") and expected in errors[0], errors[0]
    assert "unknown class" not in errors[0]


def test_a_first_fit_prints_no_startup_noise_and_flops_per_image(mnist_dir, tmp_path):
    import subprocess
    import sys

    args = [sys.executable, "-m", "lightning_cnn", "fit", "--data.data_dir", str(mnist_dir), *map(str, TINY)]
    args += ["--trainer.max_epochs", "1", "--trainer.enable_model_summary", "true", "--progress", "lines"]
    args += ["--trainer.default_root_dir", str(tmp_path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    for noise in ("GPU available:", "TPU available:", "litlogger", "LeafSpec", "`Trainer.fit` stopped"):
        assert noise not in printed, noise
    assert "Total FLOPs: 833 K" in printed  # per image, as `lightning-cnn models` gives it (0.83 M)


def test_a_run_on_a_relative_image_folder_reruns_from_another_folder(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    write_classes(tmp_path / "photos", ("cat", "dog"), 6)
    code, err = run_cli("fit", "--data", "ImageFolderDataModule", "--data.root", "photos", "--data.test_size", "4",
                        "--trainer.max_epochs", "1", *QUICK)  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    saved = yaml.safe_load((run / "config.yaml").read_text())["data"]["init_args"]
    assert saved["root"] == str(tmp_path / "photos")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, err = run_cli("test", "--config", run / "config.yaml", "--ckpt_path", "last", *QUICK)
    assert code == 0, err


def test_freezing_the_backbone_of_a_resnet_without_pretrained_weights_warns(mnist_dir, tmp_path):
    from lightning_cnn.cli import cli_main

    args = ["fit", "--model", "ResNet18", "--model.freeze_backbone", "true", "--data.data_dir", str(mnist_dir)]
    args += [*map(str, TINY), "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path)]
    with pytest.warns(UserWarning, match="only the last layer trains, on random features"):
        cli_main(args)


def test_runs_tells_apart_the_folds_started_from_one_saved_config(run_cli, trained, tmp_path, capsys):
    import csv
    import io

    from lightning_cnn.__main__ import main

    root = ["--trainer.default_root_dir", tmp_path]
    assert run_cli("kfold", "--folds", "2", "--config", trained / "config.yaml", *TINY, *root)[0] == 0
    capsys.readouterr()
    main(["runs", str(tmp_path), "--csv"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["differs"] for row in rows] == ["fold=0", "fold=1"]


def test_a_new_run_from_a_named_runs_config_has_a_name_of_its_own(run_cli, mnist_dir, tmp_path):
    root = ["--trainer.default_root_dir", tmp_path, "--data.data_dir", mnist_dir, *TINY, "--trainer.max_epochs", "1"]
    assert run_cli("fit", "--run_name", "baseline", "--tags", "[a, b]", *root)[0] == 0
    first = tmp_path / "lightning_logs" / "version_0"
    assert run_cli("fit", "--config", first / "config.yaml", *root)[0] == 0
    assert run_cli("fit", "--config", first / "config.yaml", "--run_name", "again", *root)[0] == 0
    names = [yaml.safe_load((tmp_path / "lightning_logs" / f"version_{n}" / "config.yaml").read_text()) for n in (1, 2)]
    assert [(c["run_name"], c["tags"]) for c in names] == [(None, []), ("again", [])]
    code, err = run_cli(
        "fit", "--config", first / "config.yaml", "--ckpt_path", "last", *root[:-2], "--trainer.max_epochs", "2"
    )
    assert code == 0, err  # a resume goes on under its own name
    assert yaml.safe_load((first / "config.yaml").read_text())["run_name"] == "baseline"


def test_a_three_trial_search_prints_its_trials_not_three_model_summaries(mnist_dir, tmp_path, capsys):
    from lightning_cnn.__main__ import main

    space = tmp_path / "space.yaml"
    space.write_text(
        f"base: [{Path(__file__).parent.parent / 'configs' / 'mnist' / 'lenet5.yaml'}]\nsampler: random\n"
        "trials: 3\nspace:\n  model.optimizer.init_args.lr: {type: float, low: 0.001, high: 0.01}\n"
    )
    main(["search", "--space", str(space), "--data.data_dir", str(mnist_dir), *map(str, TINY),
          "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path)])  # fmt: skip
    printed = capsys.readouterr()
    lines = (printed.out + printed.err).splitlines()
    assert not any("Total params" in line or "Seed set" in line for line in lines)
    assert len(lines) < 60, "\n".join(lines)


@pytest.mark.parametrize(
    ("where", "args", "expected"),
    [
        ("the parser", ["fit", "--trainer.max_epochz", "1"], "unrecognized arguments"),
        ("pre-flight", ["fit", "--data.batch_size", "-3"], "data.batch_size must be at least 1"),
        ("a constructor", ["fit", "--model", "ConvNet", "--model.dropout", "1.5"], "model.dropout"),
        ("the checkpoint checks", ["test", "--ckpt_path", "last"], "ckpt_path: 'last' found no run"),
        ("the machine's devices", ["fit", "--trainer.accelerator", "tpu"], "trainer.accelerator: 'tpu'"),
        ("a tool", ["kfold", "--folds", "3", "--data.fold", "1"], "kfold sets --data.fold for every fold itself"),
        ("a config file", ["fit", "--config", "missing.yaml"], "config file not found: missing.yaml"),
    ],
)
def test_a_mistake_in_my_command_exits_2_wherever_it_is_found(run_cli, mnist_dir, tmp_path, where, args, expected):
    code, err = run_cli(*args, "--data.data_dir", mnist_dir, "--trainer.default_root_dir", tmp_path)
    assert code == 2, (where, err)
    assert expected in err, (where, err)


def test_missing_data_is_not_a_mistake_in_my_command_and_exits_1(run_cli, tmp_path):
    code, err = run_cli("fit", "--data.data_dir", tmp_path / "empty", "--data.download", "false")
    assert code == 1 and "MNIST not found" in err, err
