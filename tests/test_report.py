"""The evaluation report: HPARAMS session, prediction grids and confusion matrix in TensorBoard, as read
by TensorBoard's own event reader; metrics.json and confusion_matrix.png in the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchmetrics
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from lightning_cnn.errors import ConfigError
from lightning_cnn.models.base import ImageClassifier, check_monitor
from lightning_cnn.training.preview import image_grid
from tests.helpers.runs import QUICK, macro_f1, scalars

TEST_IMAGES = 300  # the MNIST fixture's test split


def tensorboard_views(run_dir: Path) -> tuple[dict[str, int], list[list[str]], set[str]]:
    """Images per tag, the metric names of every HPARAMS session, and the scalar tags of a run folder."""
    images: dict[str, int] = {}
    sessions: list[list[str]] = []
    scalar_tags: set[str] = set()
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["images"]:
            images[tag] = images.get(tag, 0) + len(acc.Images(tag))
        scalar_tags.update(acc.Tags()["scalars"])
        try:
            contents = acc.PluginTagToContent("hparams")
        except KeyError:  # no HPARAMS summary in this file
            continue
        for content in contents.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.HasField("experiment"):
                sessions.append([info.name.tag for info in data.experiment.metric_infos])
    return images, sessions, scalar_tags


def read_png(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    assert image.format == "PNG"
    return image


def test_fit_and_test_write_the_hparams_session_grids_confusion_matrix_and_metrics_json(
    run_cli, mnist_dir, tmp_path, caplog
):
    # 3 steps an epoch: far from perfect, so the confusion matrix has mistakes to show
    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 2, "--test_after_fit", "true",
        "--trainer.limit_train_batches", 3, "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"

    images, sessions, scalar_tags = tensorboard_views(run)
    assert images == {"train/first_batch": 1, "val/predictions": 2, "test/confusion_matrix": 1, "test/reliability": 1}
    assert len(sessions) == 1 and {"val/acc_best", "val/acc", "test/acc", "test/f1"} <= set(sessions[0])
    assert "hp_metric" not in scalar_tags  # no placeholder beside the real metrics
    series = scalars(run)
    for tag in ("val/acc_top5", "val/f1", "test/acc_top5", "test/f1"):
        assert tag in series, sorted(series)
    assert series["val/acc_best"] == [max(series["val/acc"][: i + 1]) for i in range(2)]

    report = json.loads((run / "metrics.json").read_text())
    confusion = torch.tensor(report["confusion_matrix"])
    assert confusion.shape == (10, 10) and int(confusion.sum()) == report["num_images"] == TEST_IMAGES
    assert report["test/acc"] == pytest.approx(float(confusion.trace()) / TEST_IMAGES)
    assert report["test/acc"] == pytest.approx(series["test/acc"][-1])
    assert 0 <= report["test/f1"] <= 1 + 1e-6 and report["test/acc"] <= report["test/acc_top5"] <= 1
    assert int(confusion.trace()) < TEST_IMAGES
    assert report["test/f1"] == pytest.approx(macro_f1(confusion), abs=1e-6)
    assert list(report["per_class_acc"]) == report["classes"] == [str(d) for d in range(10)]
    for i, name in enumerate(report["classes"]):
        assert 0 <= report["per_class_acc"][name] <= 1
        assert report["per_class_acc"][name] == pytest.approx(float(confusion[i, i] / confusion[i].sum()))
    assert report["checkpoint"].endswith(".ckpt")
    assert read_png(run / "confusion_matrix.png").size[0] > 300
    assert "Test accuracy per class" in caplog.text and "most often taken for" in caplog.text

    # `test` of the same checkpoint: its own run folder, the same report, a session of its own
    code, err = run_cli(
        "test", "--config", run / "config.yaml", "--ckpt_path", report["checkpoint"],
        "--trainer.default_root_dir", tmp_path / "tested",
    )  # fmt: skip
    assert code == 0, err
    tested = tmp_path / "tested" / "lightning_logs" / "version_0"
    again = json.loads((tested / "metrics.json").read_text())
    assert again["confusion_matrix"] == report["confusion_matrix"]
    assert again["test/f1"] == pytest.approx(report["test/f1"])
    images, sessions, _ = tensorboard_views(tested)
    assert images == {"test/confusion_matrix": 1, "test/reliability": 1}
    assert len(sessions) == 1 and "test/acc" in sessions[0]


def test_the_report_turned_off_writes_nothing_of_its_own(run_cli, mnist_dir, tmp_path):
    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, "--trainer.max_epochs", 1, "--test_after_fit", "true",
        "--report.enabled", "false", "--trainer.limit_train_batches", 2, "--trainer.default_root_dir", tmp_path,
        *QUICK,
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "lightning_logs" / "version_0"
    images, sessions, _ = tensorboard_views(run)
    assert "val/predictions" not in images and "test/confusion_matrix" not in images and sessions == []
    assert not (run / "metrics.json").exists() and not (run / "confusion_matrix.png").exists()
    assert "val/acc_best" in scalars(run)  # a metric of the model, not of the report


def test_class_names_of_the_data_module_label_the_report(run_cli, cifar10_dir, tmp_path):
    code, err = run_cli(
        "fit", "--model", "SimpleCNN", "--data", "CIFAR10DataModule", "--data.data_dir", cifar10_dir,
        "--trainer.max_epochs", 1, "--test_after_fit", "true", "--report.num_images", 8,
        "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "lightning_logs" / "version_0" / "metrics.json").read_text())
    assert list(report["per_class_acc"])[:3] == ["airplane", "automobile", "bird"]
    assert sum(report["per_class_images"].values()) == report["num_images"] == 100


def test_the_prediction_grid_frames_the_mistakes_in_red():
    images = torch.zeros(4, 1, 28, 28)
    labels, predictions = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 7, 2, 3])
    grid = image_grid(images, labels, tuple("0123456789"), predictions).permute(1, 2, 0)
    tile = 28 * 3 + 2  # 28 px enlarged 3 times, 2 px between tiles
    red = (grid[..., 0] > 200) & (grid[..., 1] < 80) & (grid[..., 2] < 80)
    assert not red[:, :tile].any()  # the first tile is right
    assert red[: 28 * 3, tile : 2 * tile].any()  # the second is wrong: red inside the image area


def test_top5_is_logged_and_watchable_only_with_more_than_five_classes():
    assert "val/acc_top5" in list(ImageClassifier(num_classes=10).val_metrics.keys())
    assert "val/acc_top5" not in list(ImageClassifier(num_classes=5).val_metrics.keys())
    check_monitor("checkpoint.monitor", "val/acc_top5", "max", num_classes=10)
    with pytest.raises(ConfigError, match="more than 5 classes"):
        check_monitor("checkpoint.monitor", "val/acc_top5", "max", num_classes=5)


def test_macro_f1_is_its_own_metric_even_when_a_first_batch_is_all_right():
    """torchmetrics merges metrics whose states are equal after the first batch; a batch predicted all right can
    make top-5 accuracy's states equal F1's, and F1 then reports top-5's value."""
    collection = ImageClassifier(num_classes=10).test_metrics
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat(4)
    right = torch.nn.functional.one_hot(labels, 10).float() * 10
    wrong = torch.randn(40, 10, generator=generator)
    collection.update(right, labels)
    collection.update(wrong, labels)
    all_logits, all_labels = torch.cat([right, wrong]), torch.cat([labels, labels])
    expected = torchmetrics.functional.classification.multiclass_f1_score(all_logits, all_labels, 10, average="macro")
    assert float(collection.compute()["test/f1"]) == pytest.approx(float(expected))
