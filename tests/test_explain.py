"""Grad-CAM: a map for every registered CNN and a one-line refusal for the others, high where the evidence is,
``predict-files --explain`` writing one overlay per file, and ``report.explain`` drawing the test mistakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lightning_cnn.cli import cli_main
from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.explain import check_explainable, grad_cam, overlay, overlay_name
from lightning_cnn.models import ImageClassifier, TimmClassifier
from tests.helpers.models import MODEL_CASES, build
from tests.helpers.runs import QUICK, fit_tiny_run
from tests.helpers.writers import synthetic_images

SHAPES = [(1, 28, 28), (3, 32, 32)]
REFUSED = {"MLP"}  # registered models without convolutional layers


def assert_refusal(error: ConfigError, option: str, label: str) -> None:
    message = str(error)
    assert "\n" not in message and message.startswith(f"{option}: {label} has no convolutional feature map")
    assert "Grad-CAM needs convolutional layers" in message


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_every_registered_cnn_gets_a_map_at_the_input_size_and_the_others_a_refusal(case, shape):
    torch.manual_seed(0)
    model = build(case, num_classes=5, input_shape=shape)
    if case in REFUSED:
        with pytest.raises(ConfigError) as error:
            check_explainable(model, shape, "--explain")
        assert_refusal(error.value, "--explain", case)
        with pytest.raises(ConfigError):
            grad_cam(model, torch.randn(2, *shape))
        return
    layer = check_explainable(model, shape)
    model.train()  # grad_cam evaluates in eval mode and gives the mode back
    cam = grad_cam(model, torch.randn(2, *shape))
    assert model.training and cam.layer == layer
    assert cam.maps.shape == (2, *shape[1:]) and torch.isfinite(cam.maps).all()
    assert cam.maps.min() >= 0 and cam.maps.max() <= 1
    assert torch.equal(cam.classes, cam.logits.argmax(dim=1))
    chosen = grad_cam(model, torch.randn(2, *shape), classes=torch.tensor([4, 0]))
    assert chosen.classes.tolist() == [4, 0]


def test_a_transformer_without_a_convolutional_map_is_refused_in_one_line():
    vit = TimmClassifier(model_name="test_vit", model_args={"img_size": 32, "patch_size": 4}, input_shape=(3, 32, 32))
    with pytest.raises(ConfigError) as error:
        check_explainable(vit, (3, 32, 32), "report.explain")
    assert_refusal(error.value, "report.explain", "TimmClassifier (test_vit)")


class BrightAndDark(ImageClassifier):
    """Class 0 counts bright pixels, class 1 dark ones: a fixed 1×1 conv (x and 1 - x), ReLU, 2×2 max-pool, and
    the mean of each map as the logit."""

    def __init__(self) -> None:
        super().__init__(num_classes=2, input_shape=(1, 16, 16))
        conv = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            conv.bias.copy_(torch.tensor([0.0, 1.0]))
        self.net = nn.Sequential(nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2)), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_the_map_is_high_where_the_evidence_for_the_class_is():
    corners = [(slice(0, 4), slice(0, 4)), (slice(0, 4), slice(12, 16)), (slice(12, 16), slice(0, 4))]
    images = torch.zeros(len(corners), 1, 16, 16)
    for image, (rows, cols) in zip(images, corners, strict=True):
        image[0, rows, cols] = 1.0  # a bright square in one corner, a different one in each image
    model = BrightAndDark()
    bright = grad_cam(model, images, classes=torch.zeros(3, dtype=torch.long))
    dark = grad_cam(model, images, classes=torch.ones(3, dtype=torch.long))
    for i, (rows, cols) in enumerate(corners):
        square = torch.zeros(16, 16, dtype=torch.bool)
        square[rows, cols] = True
        far = torch.zeros(16, 16, dtype=torch.bool)
        far[6:, 6:] = True  # away from every square
        assert bright.maps[i][square].mean() > 0.7 and bright.maps[i][far].max() < 0.05, i
        assert dark.maps[i][square].mean() < 0.3 and dark.maps[i][far].min() > 0.95, i


def test_an_overlay_is_the_image_under_the_jet_colours():
    image = torch.zeros(1, 8, 8)
    heat = torch.zeros(8, 8)
    heat[0, 0] = 1.0
    blended = overlay(image, heat)
    assert blended.dtype == np.uint8 and blended.shape == (8, 8, 3)
    red, green, blue = blended[0, 0].tolist()
    assert red > blue and red > green  # the strongest evidence is red
    assert blended[7, 7, 2] > blended[7, 7, 0]  # none is blue


def test_overlay_names_come_from_the_path_and_never_collide():
    taken: set[str] = set()
    names = [overlay_name(Path(p), taken) for p in ["photos/cat.jpg", "/abs/x.png", "a b/x.png", "a_b/x.png", "../y"]]
    assert names == ["photos__cat.jpg.png", "abs__x.png.png", "a_b__x.png.png", "a_b__x.png-2.png", "up__y.png"]
    assert overlay_name(Path("PHOTOS/CAT.JPG"), taken) == "PHOTOS__CAT.JPG-2.png"  # one name on case-blind disks


@pytest.fixture(scope="module")
def explained_run(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    """LeNet-5 fit for a few steps on the MNIST fixture and tested with ``report.explain: true``."""
    root = tmp_path_factory.mktemp("explain")
    cli_main(
        [
            "fit", "--data.data_dir", str(mnist_dir), *QUICK, "--seed_everything", "1",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--preview.num_images", "0",
            "--trainer.default_root_dir", str(root), "--test_after_fit", "true", "--report.explain", "true",
            "--report.num_images", "8",
        ]
    )  # fmt: skip
    (run,) = sorted((root / "lightning_logs").glob("version_*"))
    return run


def test_report_explain_draws_the_test_mistakes_under_their_maps(explained_run):
    from tests.test_report import tensorboard_views

    image = Image.open(explained_run / "mistakes_explained.png")
    image.load()
    assert image.format == "PNG" and image.mode == "RGB" and min(image.size) > 64
    images, _, _ = tensorboard_views(explained_run)
    assert images.get("test/mistakes_explained") == 1


def test_report_explain_refuses_a_model_without_convolutions_before_training(run_cli, mnist_dir, tmp_path):
    code, err = run_cli(
        "fit", "--model", "MLP", "--data.data_dir", mnist_dir, *QUICK, "--trainer.max_epochs", "1",
        "--trainer.default_root_dir", tmp_path, "--report.explain", "true",
    )  # fmt: skip
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: report.explain: MLP has no convolutional feature map") and "Grad-CAM" in line
    assert not list(tmp_path.rglob("*.ckpt"))


def write_digits(folder: Path) -> list[Path]:
    """Three grey PNGs, two of them with the same name in different folders."""
    pixels, _ = synthetic_images(3, (28, 28, 1), seed=3)
    paths = [folder / "a" / "digit.png", folder / "b" / "digit.png", folder / "b" / "other.png"]
    for path, image in zip(paths, pixels, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(path)
    return paths


def test_predict_files_explain_writes_one_overlay_per_file(explained_run, run_cli, tmp_path):
    files = write_digits(tmp_path / "in")
    out = tmp_path / "cams"
    code, err = run_cli(
        "predict-files", "--ckpt_path", explained_run, *files, "--output", tmp_path / "p.csv", "--explain", out,
        "--no_progress", "--workers", "1",
    )  # fmt: skip
    assert code == 0, err
    written = sorted(out.iterdir())
    assert len(written) == 3 and len({p.name for p in written}) == 3
    assert f"wrote 3 Grad-CAM overlay(s) of the top class into {out}" in err
    for path in written:
        image = Image.open(path)
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (112, 112)  # 28 × 4


def test_predict_files_explain_refuses_a_model_without_convolutions_in_one_line(mnist_dir, run_cli, tmp_path):
    run = fit_tiny_run(tmp_path / "runs", ["--data.data_dir", str(mnist_dir)], model="MLP")
    files = write_digits(tmp_path / "in")
    csv = tmp_path / "p.csv"
    code, err = run_cli("predict-files", "--ckpt_path", run, *files, "--output", csv, "--explain", tmp_path / "cams")
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: --explain: MLP has no convolutional feature map") and "Grad-CAM" in line
    assert not csv.exists() and not (tmp_path / "cams").exists()
