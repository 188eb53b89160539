"""Multi-label classification: the CSV data module and its one-line errors, multi-hot targets, every registered model
with one logit per label and binary cross-entropy, the thresholds tuned on validation, and a fit + test + predict-files
of LeNet-5 end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_cnn.data import MultiLabelImageFolder
from lightning_cnn.errors import ConfigError
from lightning_cnn.models.base import ImageClassifier
from lightning_cnn.models.losses import CrossEntropyLoss, FocalLoss
from lightning_cnn.models.multilabel import AsymmetricLoss, MultiLabelBCELoss, f1_thresholds
from tests.helpers.models import MODEL_CASES, build
from tests.helpers.runs import QUICK

LABELS = ("circle", "square", "stripe")


def write_set(root: Path, name: str, n: int, seed: int) -> Path:
    """``n`` 16×16 grayscale PNGs under ``root/name/`` whose labels are the shapes drawn in them, and ``name.csv``."""
    rng = np.random.default_rng(seed)
    (root / name).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        present = [label for label in LABELS if rng.random() < 0.5] or [LABELS[i % 3]]
        image = rng.integers(0, 40, (16, 16)).astype(np.uint8)
        if "circle" in present:
            image[2:7, 2:7] = 255
        if "square" in present:
            image[9:14, 9:14] = 200
        if "stripe" in present:
            image[:, 7:9] = 150
        Image.fromarray(image).save(root / name / f"{i:03d}.png")
        rows.append((f"{name}/{i:03d}.png", " ".join(present)))
    write_csv(root / f"{name}.csv", rows)
    return root / f"{name}.csv"


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, ...] = ("file", "labels")) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def shapes(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A root with train.csv (60 images) and test.csv (24), the decode cache in this test's folder."""
    monkeypatch.setenv("LIGHTNING_CNN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "shapes"
    write_set(root, "train", 60, seed=1)
    write_set(root, "test", 24, seed=2)
    return root


def module(root: Path, **options) -> MultiLabelImageFolder:
    defaults = {"train_csv": "train.csv", "test_csv": "test.csv", "grayscale": True, "image_size": 16}
    return MultiLabelImageFolder(root=str(root), **{**defaults, **options}, decode_workers=1, val_size=12)


def test_csv_rows_become_multi_hot_targets_of_the_sorted_labels(shapes):
    data = module(shapes)
    assert data.classes == LABELS and data.num_classes == 3 and data.multi_label
    assert data.input_shape == (1, 16, 16)
    data.setup("fit")
    data.setup("test")
    assert len(data.train_set) == 48 and len(data.val_set) == 12 and len(data.test_set) == 24
    targets = data.test_set.labels
    assert targets.dtype == torch.float32 and targets.shape == (24, 3)
    with open(shapes / "test.csv") as f:
        expected = [row["labels"].split() for row in csv.DictReader(f)]
    assert data.label_sets(targets) == [sorted(labels, key=LABELS.index) for labels in expected]
    again = module(shapes)  # decoded once: the second module reads the cache, the targets still from the CSV
    again.setup("test")
    assert torch.equal(again.test_set.labels, targets) and torch.equal(again.test_set.images, data.test_set.images)


def test_classes_can_be_given_in_order(shapes):
    data = module(shapes, classes=["stripe", "circle", "square"])
    data.setup("test")
    assert data.classes == ("stripe", "circle", "square")
    plain = module(shapes)
    plain.setup("test")
    assert torch.equal(data.test_set.labels, plain.test_set.labels[:, [2, 0, 1]])


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        ([("train/000.png", "circle")], ("path", "labels"), "has no column file"),
        ([("train/000.png", "circle"), ("train/404.png", "square")], None, "line 3: no file train/404.png"),
        ([("train/000.png", "circle"), ("train/001.png", "  ")], None, "line 3 (train/001.png) has no labels"),
        ([("train/000.png", "circle"), ("train/000.png", "square")], None, "line 3 lists train/000.png again"),
        ([("train/000.png", "circle"), ("", "square")], None, "line 3 has no file name"),
        ([], None, "lists no images"),
    ],
)
def test_a_bad_csv_is_one_line_naming_the_file_and_row(shapes, rows, header, message):
    bad = write_csv(shapes / "bad.csv", rows, header or ("file", "labels"))
    with pytest.raises(ConfigError, match="data.train_csv") as raised:
        module(shapes, train_csv=str(bad))
    text = str(raised.value)
    assert "\n" not in text and str(bad) in text and message in text


def test_unknown_labels_and_too_few_classes_are_one_line(shapes):
    with pytest.raises(
        ConfigError, match=r"data.train_csv: .*train.csv line \d+ .*not among the classes circle, square"
    ):
        module(shapes, classes=["circle", "square"])
    odd = write_csv(shapes / "odd.csv", [("test/000.png", "circle"), ("test/001.png", "triangle")])
    with pytest.raises(
        ConfigError, match=r"data.test_csv: .*odd.csv line 3 \(test/001.png\) has labels \['triangle'\]"
    ):
        module(shapes, test_csv=str(odd))
    one = write_csv(shapes / "one.csv", [("train/000.png", "circle"), ("train/001.png", "circle")])
    with pytest.raises(ConfigError, match="needs at least two"):
        module(shapes, train_csv=str(one), test_csv=None)


def test_mix_is_refused_on_multi_label_data(shapes):
    from lightning_cnn.data.mix import MixUp

    with pytest.raises(ConfigError, match="data.mix"):
        module(shapes, mix=MixUp())


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_every_model_emits_one_logit_per_label_and_trains_with_bce(case):
    torch.manual_seed(0)
    model = build(case, num_classes=4, input_shape=(3, 32, 32), multi_label=True)
    assert isinstance(model.loss, MultiLabelBCELoss)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1]])
    logits = model(x)
    assert logits.shape == (2, 4)
    loss = model.loss(logits, y)
    loss.backward()
    assert torch.isfinite(loss)


def test_bce_and_asymmetric_losses():
    logits, targets = torch.randn(5, 3), (torch.rand(5, 3) > 0.5).float()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=torch.tensor([2.0] * 3))
    assert torch.allclose(MultiLabelBCELoss(pos_weight=2.0)(logits, targets), expected)
    plain = AsymmetricLoss(gamma_neg=0, gamma_pos=0, clip=0)(logits, targets)
    assert torch.allclose(plain, MultiLabelBCELoss()(logits, targets), atol=1e-6)
    assert AsymmetricLoss()(logits, targets) < plain  # easy negatives weigh less
    for bad in ({"gamma_neg": -1}, {"clip": 1.0}):
        with pytest.raises(ConfigError, match="AsymmetricLoss"):
            AsymmetricLoss(**bad)
    with pytest.raises(ConfigError, match="pos_weight"):
        MultiLabelBCELoss(pos_weight=[1.0, -2.0])


def test_a_single_label_loss_on_multi_label_data_and_the_reverse_are_one_line():
    for loss in (CrossEntropyLoss(), FocalLoss()):
        with pytest.raises(ConfigError, match="multi-label"):
            ImageClassifier(num_classes=3, multi_label=True, loss=loss)
    with pytest.raises(ConfigError, match="for multi-label data"):
        ImageClassifier(num_classes=3, loss=MultiLabelBCELoss())
    with pytest.raises(ConfigError, match="pos_weight"):
        ImageClassifier(num_classes=3, multi_label=True, class_weights=[1.0, 1.0, 1.0])


def test_thresholds_maximize_each_label_s_f1():
    scores = torch.tensor([[0.9, 0.2], [0.6, 0.3], [0.4, 0.8], [0.1, 0.1]])
    targets = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 0]])
    thresholds = f1_thresholds(scores, targets)
    assert torch.allclose(thresholds, torch.tensor([0.5, 0.55]))
    assert f1_thresholds(scores, torch.zeros(4, 2)).tolist() == [0.5, 0.5]  # no positive: the default


def test_fit_test_and_predict_files_of_a_multi_label_run(run_cli, shapes, tmp_path):
    data = [
        "--data", "MultiLabelImageFolder", "--data.root", str(shapes), "--data.train_csv", "train.csv",
        "--data.test_csv", "test.csv", "--data.grayscale", "true", "--data.image_size", "16",
        "--data.val_size", "12", "--data.batch_size", "16", "--data.decode_workers", "1",
    ]  # fmt: skip
    code, err = run_cli(
        "fit", "--model", "LeNet5", *data, *QUICK, "--seed_everything", "1", "--trainer.max_epochs", "2",
        "--trainer.default_root_dir", str(tmp_path), "--test_after_fit", "true", "--preview.num_images", "4",
        "--report.num_images", "6",
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("test/map", "test/f1", "test/f1_micro", "test/hamming_acc", "test/acc", "test/loss"):
        assert 0 <= metrics[key] <= (1 if key != "test/loss" else 10), key
    assert set(metrics["per_label_ap"]) == set(LABELS) and set(metrics["thresholds"]) == set(LABELS)
    thresholds = json.loads((run / "thresholds.json").read_text())
    assert thresholds == metrics["thresholds"]
    assert (run / "test_predictions.png").is_file() and not (run / "confusion_matrix.png").exists()
    output = tmp_path / "predictions.csv"
    code, err = run_cli("predict-files", "--ckpt_path", str(run), str(shapes / "test"), "--output", str(output))
    assert code == 0, err
    with open(output) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and set(rows[0]) >= {"file", "labels", *(f"p_{label}" for label in LABELS)}
    row = rows[0]
    predicted = {label for label in LABELS if float(row[f"p_{label}"]) > thresholds[label]}
    assert set(row["labels"].split()) == predicted

    # ensemble averages the members' sigmoid outputs; one member's ensemble is that member
    result = tmp_path / "ensemble.json"
    code, err = run_cli("ensemble", "--ckpt_path", str(run), "--output", str(result))
    assert code == 0, err
    evaluated = json.loads(result.read_text())
    assert evaluated["multi_label"] and len(evaluated["thresholds"]) == len(LABELS)
    assert evaluated["ensemble"]["test_map"] == pytest.approx(evaluated["members"][0]["test_map"])
    assert evaluated["members"][0]["test_map"] == pytest.approx(metrics["test/map"], abs=1e-4)

    # export writes the network's logits, one per label, and the tuned thresholds beside it
    exported = tmp_path / "model.onnx"
    code, err = run_cli("export", "--ckpt_path", str(run), "--output", str(exported))
    assert code == 0, err
    metadata = json.loads(exported.with_suffix(".json").read_text())
    assert metadata["thresholds"] == pytest.approx([thresholds[label] for label in LABELS], abs=1e-5)
    assert "sigmoid" in metadata["output"]
