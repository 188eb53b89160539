"""Two-class tasks: binary cross-entropy trains one logit in every registered model (refused with more classes in one
line), and with either loss the test reports ROC-AUC and PR-AUC, draws the ROC and precision-recall curves and records
the threshold the validation split suggests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lightning_cnn.checkpoints import read_checkpoint
from lightning_cnn.cli import cli_main
from lightning_cnn.models.base import ImageClassifier
from lightning_cnn.models.binary import (
    PositiveAUROC,
    PositiveAveragePrecision,
    PositiveScores,
    ranking_metrics,
    two_class_logits,
    youden_threshold,
)
from lightning_cnn.models.losses import BCEWithLogitsLoss
from tests.helpers.models import MODEL_CASES, build
from tests.helpers.runs import QUICK
from tests.helpers.writers import write_two_classes

CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.fixture
def two_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of two classes, 16 images each, its decode cache in this test's folder."""
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))
    return write_two_classes(tmp_path / "photos", 16)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("soft", [False, True])
def test_bce_of_one_logit_is_cross_entropy_of_its_two_class_logits(smoothing, weighted, soft):
    torch.manual_seed(0)
    z = torch.randn(16, 1) * 3
    labels = torch.randint(0, 2, (16,))
    targets = torch.softmax(torch.randn(16, 2), dim=1) if soft else labels
    weight = torch.tensor([0.5, 2.0]) if weighted else None
    logits = two_class_logits(z)
    expected = F.cross_entropy(logits, targets, weight=weight, label_smoothing=smoothing)
    loss = BCEWithLogitsLoss()
    assert torch.allclose(loss(logits, targets, weight, smoothing), expected, atol=1e-6)
    assert torch.allclose(loss(z, targets, weight, smoothing), expected, atol=1e-6)  # the raw logit reads the same
    if not (soft or weighted or smoothing):
        assert torch.allclose(loss(logits, labels), F.binary_cross_entropy_with_logits(z[:, 0], labels.float()))


def test_pos_weight_is_torch_s():
    torch.manual_seed(0)
    z, labels = torch.randn(16, 1), torch.randint(0, 2, (16,))
    expected = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0))(z[:, 0], labels.float())
    assert torch.allclose(BCEWithLogitsLoss(pos_weight=3.0)(two_class_logits(z), labels), expected, atol=1e-6)


def test_the_two_class_logits_predict_class_1_when_the_sigmoid_is_above_one_half():
    z = torch.tensor([[-2.0], [0.0], [1e-3], [4.0]])
    logits = two_class_logits(z)
    assert logits.argmax(dim=1).tolist() == [0, 0, 1, 1]
    assert torch.allclose(logits.softmax(dim=1)[:, 1], torch.sigmoid(z[:, 0]))


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_every_model_trains_one_logit_with_bce(case):
    torch.manual_seed(0)
    model = build(case, num_classes=2, input_shape=(3, 32, 32), loss=BCEWithLogitsLoss())
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 0])
    assert model.num_outputs == 1 and model.net(x).shape == (4, 1)
    logits = model(x)
    assert logits.shape == (4, 2)  # what predictions, metrics and the tools read: two classes
    loss = model.loss(logits, y)
    loss.backward()
    assert torch.isfinite(loss)
    last = [p for p in model.parameters() if p.requires_grad][-1]
    assert last.grad is not None and torch.isfinite(last.grad).all()


def test_a_model_whose_network_ignores_num_outputs_is_one_line():
    class TwoOutputs(ImageClassifier):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, self.num_classes))

    model = TwoOutputs(num_classes=2, input_shape=(3, 8, 8), loss=BCEWithLogitsLoss())
    with pytest.raises(Exception, match="build its last layer with self.num_outputs"):
        model(torch.randn(2, 3, 8, 8))


def test_bce_with_10_classes_is_refused_in_one_line(run_cli, mnist_dir, tmp_path):
    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, "--model.loss", "BCEWithLogitsLoss",
        "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert "model.loss" in errors[0] and "has 10" in errors[0] and "Traceback" not in err, errors[0]
    assert not (tmp_path / "lightning_logs").exists()


def test_a_bad_pos_weight_is_one_line(run_cli, two_classes, tmp_path):
    code, err = run_cli(
        "fit", "--data", "ImageFolderDataModule", "--data.root", two_classes, "--model.loss", "BCEWithLogitsLoss",
        "--model.loss.pos_weight", "-1", "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "model.loss.pos_weight" in errors[0], err


def test_ranking_metrics_are_exact_and_only_for_two_classes():
    torch.manual_seed(0)
    scores, labels = torch.rand(200), torch.randint(0, 2, (200,))
    probabilities = torch.stack([1 - scores, scores], dim=1)
    auroc, auprc = PositiveAUROC(), PositiveAveragePrecision()
    for part in range(0, 200, 64):  # batch by batch, as a test epoch feeds them
        auroc.update(probabilities[part : part + 64], labels[part : part + 64])
        auprc.update(probabilities[part : part + 64], labels[part : part + 64])
    positive, negative = scores[labels == 1], scores[labels == 0]
    # the chance that a class-1 image scores above a class-0 image (ties count half)
    pairs = (positive[:, None] > negative[None, :]).double() + 0.5 * (positive[:, None] == negative[None, :]).double()
    assert abs(float(auroc.compute()) - float(pairs.mean())) < 1e-6
    ranked = labels[torch.argsort(scores, descending=True)]  # average precision: the precision at each class-1 image
    precision_at_hits = torch.cumsum(ranked, 0)[ranked == 1] / (torch.nonzero(ranked == 1)[:, 0] + 1)
    assert abs(float(auprc.compute()) - float(precision_at_hits.mean())) < 1e-6
    assert set(ranking_metrics(2)) == {"auroc", "auprc"} and ranking_metrics(10) == {}


def test_the_validation_threshold_maximizes_youden_s_j_and_ignores_which_class_is_1():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.45, 0.6, 0.7, 0.9])
    classes = torch.tensor([0, 0, 1, 0, 0, 1, 1, 1])
    # class 1 above 0.525: recall 3/4, false positive rate 0 (J 0.75); above 0.25: recall 1, 2/4 (J 0.5); ...
    assert youden_threshold(scores, classes) == pytest.approx(0.525)
    swapped = youden_threshold(1 - scores, 1 - classes)  # the other class called class 1: the same cut
    assert swapped == pytest.approx(1 - 0.525)
    assert youden_threshold(scores, torch.ones(8)) is None  # one class only: no threshold
    metric = PositiveScores()
    metric.update(torch.stack([1 - scores, scores], dim=1), classes)
    assert torch.equal(metric.compute(), torch.stack([scores, classes.float()]))


@pytest.mark.parametrize("loss", ["BCEWithLogitsLoss", "CrossEntropyLoss"])
def test_a_two_class_fit_reports_auroc_auprc_curves_and_the_validation_threshold(loss, run_cli, two_classes, tmp_path):
    code, err = run_cli(
        "fit", "--data", "ImageFolderDataModule", "--data.root", two_classes, "--data.test_size", "0.25",
        "--model", "LeNet5", "--model.loss", loss, "--trainer.max_epochs", "2", "--seed_everything", "1",
        "--trainer.default_root_dir", tmp_path, "--test_after_fit", "true", *QUICK,
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    report = json.loads((run / "metrics.json").read_text())
    assert 0 <= report["test/auroc"] <= 1 and 0 <= report["test/auprc"] <= 1, report
    assert isinstance(report["val_threshold"], float) and 0 <= report["val_threshold"] <= 1, report
    assert report["classes"] == ["cat", "dog"] and sum(map(sum, report["confusion_matrix"])) == 8
    assert (run / "roc.png").stat().st_size > 0 and (run / "pr.png").stat().st_size > 0
    checkpoint = read_checkpoint(Path(report["checkpoint"]))
    assert checkpoint["val_threshold"] == report["val_threshold"]  # the tested checkpoint's own
    outputs = 1 if loss == "BCEWithLogitsLoss" else 2
    assert checkpoint["state_dict"]["net.5.weight"].shape == (outputs, 84)  # LeNet-5's last layer


def test_ddp_ranking_metrics_and_threshold_equal_one_process(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))
    # noise only, so that the scores rank the images neither right nor wrong (AUC below 1 tells processes apart);
    # 32 images: 11 test and 7 validation images, odd, so the two processes see different numbers of them
    noise = write_two_classes(tmp_path / "noise", 16, contrast=0.0)
    data = ["--data", "ImageFolderDataModule", "--data.root", str(noise), "--data.test_size", "11"]
    data += ["--data.val_size", "7", "--data.eval_batch_size", "2"]
    ddp_root = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "lightning_cnn", "fit", "--config", str(CONFIGS / "trainer" / "ddp_cpu.yaml"), *data,
        "--model", "LeNet5", "--model.loss", "BCEWithLogitsLoss", "--trainer.max_epochs", "1", "--seed_everything",
        "1", "--test_after_fit", "true", "--test_ckpt", "last", "--trainer.default_root_dir", str(ddp_root), *QUICK,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert done.returncode == 0, done.stderr[-3000:]
    run = ddp_root / "lightning_logs" / "version_0"
    ddp_report = json.loads((run / "metrics.json").read_text())
    single = tmp_path / "single"
    common = ["--config", run / "config.yaml", "--trainer.strategy", "auto", "--trainer.devices", 1]
    common += ["--ckpt_path", run / "checkpoints" / "last.ckpt", "--trainer.default_root_dir", single]
    code, err = run_cli("test", *common)
    assert code == 0, err
    single_report = json.loads((single / "lightning_logs" / "version_0" / "metrics.json").read_text())
    assert ddp_report["num_images"] == single_report["num_images"] == 11
    assert 0 < ddp_report["test/auroc"] < 1, ddp_report
    for tag in ("test/auroc", "test/auprc"):  # every process's scores gathered: the whole split's ranking
        assert ddp_report[tag] == pytest.approx(single_report[tag], abs=1e-6), tag
    validated = cli_main(["validate", *map(str, common)])  # the threshold of the whole validation split, again
    assert ddp_report["val_threshold"] == pytest.approx(validated.model.val_threshold, abs=1e-6)
