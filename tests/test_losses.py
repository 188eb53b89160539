"""Losses from config: focal loss reduces to cross-entropy at gamma 0, balanced class weights are inverse class
frequency of the training split, and bad loss options are one line naming the key."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EMAWeightAveraging

from lightning_cnn.data import MNISTDataModule
from lightning_cnn.models import ConvNet, LeNet5
from lightning_cnn.models.losses import CrossEntropyLoss, FocalLoss, balanced_weights
from tests.helpers.runs import QUICK


def batch(n: int = 32, k: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    logits = torch.randn(n, k) * 3
    labels = torch.randint(0, k, (n,))
    soft = torch.softmax(torch.randn(n, k), dim=1)
    return logits, labels, soft


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("soft", [False, True])
def test_focal_loss_with_gamma_zero_is_cross_entropy(smoothing, weighted, soft):
    logits, labels, probabilities = batch()
    targets = probabilities if soft else labels
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.25]) if weighted else None
    expected = F.cross_entropy(logits, targets, weight=weight, label_smoothing=smoothing)
    for loss in (FocalLoss(gamma=0.0), CrossEntropyLoss()):
        assert torch.allclose(loss(logits, targets, weight, smoothing), expected, atol=1e-6)


def test_focal_loss_discounts_the_images_already_right():
    confident = torch.tensor([[6.0, 0.0, 0.0]])
    unsure = torch.tensor([[0.5, 0.0, 0.0]])
    label = torch.tensor([0])
    ce, focal = CrossEntropyLoss(), FocalLoss(gamma=2.0)
    # the ratio focal / cross-entropy is (1 - p)^2: tiny for the confident image, larger for the unsure one
    assert focal(confident, label) / ce(confident, label) < 1e-4
    assert focal(unsure, label) / ce(unsure, label) > 0.2
    assert torch.allclose(FocalLoss(gamma=2.0, alpha=0.25)(unsure, label), 0.25 * focal(unsure, label))


def test_balanced_weights_are_inverse_class_frequency():
    counts = torch.tensor([10, 30, 60, 0])
    weights = balanced_weights(counts)
    assert torch.allclose(weights[:3] * counts[:3], torch.full((3,), 25.0))  # 100 images / 4 classes
    assert weights[3] == 0  # a class with no training images
    assert torch.allclose(balanced_weights(torch.tensor([7, 7, 7])), torch.ones(3))


@pytest.mark.parametrize("ema", [False, True], ids=["plain", "with EMA of a batch-norm model"])
def test_balanced_weights_come_from_the_training_split(mnist_dir, tmp_path, ema):
    dm = MNISTDataModule(data_dir=str(mnist_dir), val_size=300, batch_size=50)
    # the EMA callback copies the model (with its buffers) before fit computes the weights
    model = ConvNet(class_weights="balanced", batch_norm=True) if ema else LeNet5(class_weights="balanced")
    trainer = L.Trainer(
        fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, callbacks=[EMAWeightAveraging()] if ema else None,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    counts = torch.bincount(dm.train_set.labels, minlength=10).float()
    assert counts.sum() == len(dm.train_set) and len(set(counts.tolist())) > 1  # the synthetic split is uneven
    assert torch.allclose(model.class_weight * counts, torch.full((10,), counts.sum() / 10))
    assert "class_weight" not in model.state_dict()  # checkpoints stay loadable by a model without weights


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--model.loss", "Hinge"],
            "model.loss: unknown class 'Hinge'; choose one of AsymmetricLoss, BCEWithLogitsLoss, CrossEntropyLoss,"
            " FocalLoss, MultiLabelBCELoss",
        ),
        (["--model.loss", "FocalLoss", "--model.loss.gamma", "-1"], "model.loss.gamma (FocalLoss) must be 0 or more"),
        (
            ["--model.class_weights", "[1, 2, 3]"],
            "model.class_weights has 3 values but the data has 10 classes; give 10 weights or 'balanced'",
        ),
        (["--model.class_weights", "balancd"], "model.class_weights: expected list[float] or one of balanced"),
    ],
)
def test_bad_loss_options_are_one_line(run_cli, mnist_dir, tmp_path, args, expected):
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, *args, "--trainer.default_root_dir", tmp_path, *QUICK)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and expected in errors[0], err
    assert "Traceback" not in err and not (tmp_path / "lightning_logs").exists()
