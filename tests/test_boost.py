"""Boosting: SAMME's weight update and vote, weighted resamples of the training split, the ``boost`` tool and the
``boosting`` row of ``ensemble``."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lightning_cnn.data import MNISTDataModule
from lightning_cnn.data.weighted import save_sample_weights
from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.boosting import samme_step, samme_vote
from lightning_cnn.inference.trained import load_trained
from tests.helpers.runs import QUICK


def module(mnist_dir, **options) -> MNISTDataModule:
    return MNISTDataModule(data_dir=str(mnist_dir), download=False, val_size=0.2, **options)


def test_samme_step_matches_the_update_by_hand():
    wrong = torch.tensor([True, False, False, True, False, False, False, False, False, False])
    weights = torch.tensor([1.0, 1, 1, 1, 1, 1, 1, 1, 2, 2])  # sums to 12: the wrong ones carry 2 / 12
    step = samme_step(weights, wrong, num_classes=4)
    err = 2 / 12
    alpha = math.log((1 - err) / err) + math.log(3)
    expected = weights / 12 * torch.where(wrong, math.exp(alpha), 1.0)
    assert step.err == pytest.approx(err) and step.alpha == pytest.approx(alpha) and step.stop is None
    assert torch.allclose(step.weights, (expected / expected.sum()).double())
    uniform = samme_step(None, wrong, num_classes=4)
    assert uniform.err == pytest.approx(0.2)
    assert samme_step(None, torch.ones(4, dtype=torch.bool), 4).stop.startswith("its weighted training error 1.0000")
    assert samme_step(None, torch.tensor([True, True, True, False]), 4).alpha == 0.0  # 0.75 = 1 - 1/4: chance
    assert "every training image right" in samme_step(None, torch.zeros(4, dtype=torch.bool), 4).stop


def test_samme_vote_is_the_alpha_weighted_majority():
    predictions = [torch.tensor([0, 1, 2]), torch.tensor([1, 1, 0]), torch.tensor([1, 2, 0])]
    votes = samme_vote(predictions, [2.0, 1.5, 1.0], num_classes=3)
    assert votes.argmax(1).tolist() == [1, 1, 0]  # image 0: class 0 has 2.0, class 1 has 2.5
    assert torch.allclose(votes[0], torch.tensor([2.0, 2.5, 0.0]) / 4.5)


def test_sample_weights_draw_the_training_split_by_weight(mnist_dir, tmp_path):
    plain = module(mnist_dir)
    plain.setup("fit")
    n = len(plain.train_set)
    weights = torch.zeros(n)
    weights[:3] = torch.tensor([1.0, 1.0, 2.0])
    save_sample_weights(tmp_path / "w.pt", weights, seed=7)
    weighted = module(mnist_dir, sample_weights=str(tmp_path / "w.pt"))
    weighted.setup("fit")
    assert len(weighted.train_set) == n and torch.equal(weighted.val_set.images, plain.val_set.images)
    drawn = {weighted.train_set.images[i].numpy().tobytes() for i in range(n)}
    assert drawn == {plain.train_set.images[i].numpy().tobytes() for i in range(3)}
    save_sample_weights(tmp_path / "short.pt", torch.ones(5), seed=0)
    short = module(mnist_dir, sample_weights=str(tmp_path / "short.pt"))
    with pytest.raises(ConfigError, match="holds weights of shape"):
        short.setup("fit")


def test_boost_records_alpha_and_ensemble_votes_with_it(run_cli, mnist_dir, tmp_path):
    code, err = run_cli(
        "boost", "--members", "2", "--model", "MLP", "--model.hidden", "[8]", "--data", "MNISTDataModule",
        "--data.data_dir", mnist_dir, "--data.download", "false", *QUICK, "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2", "--trainer.default_root_dir", tmp_path, "--preview.num_images", "0",
        "--test_after_fit", "false", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    logs = tmp_path / "lightning_logs"
    (boost_dir,) = logs.glob("boost_*")
    record = json.loads((boost_dir / "boost.json").read_text())
    runs = [run["run_dir"] for run in record["runs"]]
    assert len(runs) == 2 and (boost_dir / "boost.csv").is_file() and (boost_dir / "weights_2.pt").is_file()
    members = [load_trained(run) for run in runs]
    assert members[0].datamodule_hparams["sample_weights"] is None
    assert members[1].datamodule_hparams["sample_weights"] == str((boost_dir / "weights_2.pt").resolve())
    # member 1's α and error by hand, on the whole training split under uniform weights
    train = module(mnist_dir)
    train.setup("fit")
    wrong = members[0].probabilities(train.train_set.images).argmax(1) != train.train_set.labels
    err = wrong.double().mean().item()
    first = json.loads((logs / runs[0] / "boosting.json").read_text())
    assert first["err"] == pytest.approx(err)
    assert first["alpha"] == pytest.approx(math.log((1 - err) / err) + math.log(9))
    assert record["runs"][0]["alpha"] == first["alpha"]

    out = tmp_path / "ensemble.json"
    code, err = run_cli("ensemble", "--ckpt_path", *runs, "--output", out, "--device", "cpu")
    assert code == 0, err
    result = json.loads(out.read_text())
    train.setup("test")
    alphas = [json.loads((logs / run / "boosting.json").read_text())["alpha"] for run in runs]
    votes = torch.zeros(len(train.test_set), 10, dtype=torch.float64)
    for member, alpha in zip(members, alphas, strict=True):
        votes[torch.arange(len(votes)), member.probabilities(train.test_set.images).argmax(1)] += alpha
    expected = (votes.argmax(1) == train.test_set.labels).float().mean().item()
    assert result["boosting"]["alphas"] == pytest.approx(alphas)
    assert result["boosting"]["test_acc"] == pytest.approx(expected, abs=1e-6)


def test_members_zero_is_one_line(run_cli):
    code, err = run_cli("boost", "--members", "0", "--model", "MLP")
    assert code == 2 and err.splitlines()[0] == "error: lightning-cnn boost: --members must be 2 to 1000, got 0"
    code, err = run_cli("boost", "--data.sample_weights", "w.pt")
    assert code == 2 and "boost sets --data.sample_weights" in err
