"""ensemble: each member's and the averaged softmax's test accuracy, as a table and JSON; mismatched members refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_cnn.checkpoints import record_sum, sha256
from lightning_cnn.data import MNISTDataModule
from lightning_cnn.inference.trained import load_trained
from lightning_cnn.run_folder import resolve_checkpoint
from tests.helpers.runs import fit_tiny_run


@pytest.fixture(scope="module")
def mnist_runs(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three LeNet-5 runs on the tiny MNIST, seeds 1, 2, 3."""
    root = tmp_path_factory.mktemp("ensemble")
    data = ["--data", "MNISTDataModule", "--data.data_dir", str(mnist_dir), "--data.download", "false"]
    return [fit_tiny_run(root / f"seed{seed}", data, seed=seed) for seed in (1, 2, 3)]


def test_json_matches_a_manual_softmax_average(mnist_runs, mnist_dir, run_cli, tmp_path):
    out = tmp_path / "ensemble.json"
    code, err = run_cli("ensemble", "--ckpt_path", *mnist_runs, "--data.data_dir", mnist_dir, "--output", out)
    assert code == 0, err
    result = json.loads(out.read_text())

    datamodule = MNISTDataModule(data_dir=str(mnist_dir), download=False)
    datamodule.setup("test")
    images, labels = datamodule.test_set.images, datamodule.test_set.labels
    members = [load_trained(run) for run in mnist_runs]
    with torch.no_grad():
        probs = [m.model(datamodule.normalize(images.float() / 255)).softmax(1) for m in members]
    accs = [(p.argmax(1) == labels).float().mean().item() for p in probs]
    ensemble = (torch.stack(probs).mean(0).argmax(1) == labels).float().mean().item()

    assert result["num_images"] == len(labels) == 300
    assert [row["ckpt_path"] for row in result["members"]] == [str(resolve_checkpoint(r)) for r in mnist_runs]
    assert [row["test_acc"] for row in result["members"]] == pytest.approx(accs, abs=1e-6)
    assert result["member_mean_test_acc"] == pytest.approx(sum(accs) / 3, abs=1e-6)
    assert result["ensemble_test_acc"] == pytest.approx(ensemble, abs=1e-6)
    assert result["data"]["class_path"] == "lightning_cnn.data.MNISTDataModule"


def test_table_lists_members_mean_average_and_stacking(mnist_runs, mnist_dir, capsys, tmp_path):
    from lightning_cnn.__main__ import main

    main(["ensemble", "--ckpt_path", *map(str, mnist_runs[:2]), "--data.data_dir", str(mnist_dir),
          "--output", str(tmp_path / "e.json")])  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads((tmp_path / "e.json").read_text())
    assert lines[0].split() == ["member", "model", "trained", "on", "calibrated", "test/acc", "test/ece"]
    assert len(lines) == 6
    assert lines[1].split()[-2] == f"{result['members'][0]['test_acc']:.4f}" and "LeNet5" in lines[1]
    assert "training split" in lines[1] and result["bagging"] is None  # no member trained on a bootstrap resample
    assert lines[3].startswith("mean of members") and f"{result['member_mean_test_acc']:.4f}" in lines[3]
    assert lines[4].startswith("softmax average of 2") and f"{result['ensemble_test_acc']:.4f}" in lines[4]
    assert lines[5].startswith("stacking (fit on 240 validation images)")
    assert lines[5].split()[-2:] == [f"{result['stacking'][k]:.4f}" for k in ("test_acc", "test_ece")]


def test_stacking_is_skipped_with_the_reason_when_members_validated_on_other_splits(mnist_runs, mnist_dir, tmp_path):
    """A member validated on another split may have trained on the images the stacking would be fit on."""
    from lightning_cnn.__main__ import main

    other = tmp_path / "other.ckpt"
    checkpoint = torch.load(resolve_checkpoint(mnist_runs[0]), weights_only=False)
    checkpoint["datamodule_hyper_parameters"]["split_seed"] = 7
    torch.save(checkpoint, other)
    record_sum(other, sha256(other))  # as a run of its own would have recorded it
    main(["ensemble", "--ckpt_path", str(mnist_runs[1]), str(other), "--data.data_dir", str(mnist_dir),
          "--output", str(tmp_path / "e.json")])  # fmt: skip
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["stacking"] == {
        "skipped": "the members were validated on different splits (val_size, test_size, split_seed, fold, num_folds"
        " differ)"
    }


def test_config_data_section_is_used(mnist_runs, tmp_path, run_cli):
    """--config takes the data settings of a config file; a wrong data folder there fails with one line."""
    config = tmp_path / "config.yaml"
    config.write_text(f"data:\n  class_path: lightning_cnn.data.MNISTDataModule\n  init_args:\n"
                      f"    data_dir: {tmp_path / 'nowhere'}\n    download: false\n")  # fmt: skip
    code, err = run_cli("ensemble", "--ckpt_path", *mnist_runs[:2], "--config", config, "--output", tmp_path / "e.json")
    assert code == 1 and err.count("\n") == 1 and "MNIST not found" in err and "nowhere" in err


def test_mismatched_members_rejected(mnist_runs, mnist_dir, run_cli, tmp_path):
    """A member with other classes (here: the same checkpoint with its class names changed) is refused by name."""
    other = tmp_path / "other.ckpt"
    checkpoint = torch.load(resolve_checkpoint(mnist_runs[0]), weights_only=False)
    checkpoint["MNISTDataModule"]["preprocessing"]["classes"] = [f"c{i}" for i in range(10)]
    torch.save(checkpoint, other)
    record_sum(other, sha256(other))
    code, err = run_cli("ensemble", "--ckpt_path", mnist_runs[1], other, "--data.data_dir", mnist_dir)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: ensemble members differ in classes") and str(other) in err
    code, err = run_cli("ensemble", "--ckpt_path", mnist_runs[1], "--data.nonsense")
    assert code == 2 and "--data.nonsense needs a value" in err
    # one run given twice (its folder and its best file) would weigh it double in the average
    code, err = run_cli("ensemble", "--ckpt_path", mnist_runs[0], resolve_checkpoint(mnist_runs[0]))
    assert code == 2 and err.count("\n") == 1 and "is given twice" in err
