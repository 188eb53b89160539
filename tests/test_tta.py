"""Test-time augmentation: views that follow the training augmentation (none for digits), the averaged softmax, and
``--tta true`` in test (both figures logged), fit with test_after_fit, predict-files and ensemble."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lightning_cnn.data import MNISTDataModule
from lightning_cnn.data.augment import HorizontalFlip, RandomCrop
from lightning_cnn.data.policies import RandAugment
from lightning_cnn.data.tta import View, average_probabilities, black, tta_views, views_from_augment
from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.trained import load_trained
from lightning_cnn.run_folder import resolve_checkpoint
from tests.helpers.runs import QUICK, fit_tiny_run
from tests.helpers.writers import synthetic_images

CROP_AND_FLIP = ["--data.augment+=RandomCrop", "--data.augment.padding", "2", "--data.augment+=HorizontalFlip"]


def mnist_data(mnist_dir: Path) -> list[str]:
    return ["--data", "MNISTDataModule", "--data.data_dir", str(mnist_dir), "--data.download", "false"]


@pytest.fixture(scope="module")
def tta_runs(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two LeNet-5 runs on the tiny MNIST trained with RandomCrop(padding=2) and HorizontalFlip, each tested after
    its fit with test-time augmentation."""
    root = tmp_path_factory.mktemp("tta")
    extra = [*CROP_AND_FLIP, "--test_after_fit", "true", "--tta", "true"]
    return [fit_tiny_run(root / f"seed{seed}", [*mnist_data(mnist_dir), *extra], seed=seed) for seed in (1, 2)]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- views -----------------------------------------------------------------------------------------------------


def test_views_follow_the_training_augmentation():
    assert [v.name for v in views_from_augment([HorizontalFlip()])] == ["identity", "flip"]
    crop = views_from_augment([RandomCrop(padding=4)])
    assert [(v.dy, v.dx) for v in crop] == [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)] and not any(v.flip for v in crop)
    both = views_from_augment([RandomCrop(padding=4), HorizontalFlip()])
    assert len(both) == 10 and both[0] == View() and sum(v.flip for v in both) == 5
    # a run's record of its augmentations (hparams, checkpoints) gives the same views as the objects
    assert views_from_augment(["RandomCrop(padding=4)", "HorizontalFlip(p=0.5)"]) == both
    assert views_from_augment([{"class_path": "lightning_cnn.data.augment.HorizontalFlip"}]) == views_from_augment(
        [HorizontalFlip()]
    )
    assert [v.dy for v in views_from_augment([RandomCrop(padding=1)])] == [0, 1, -1, 0, 0]  # at least one pixel


@pytest.mark.parametrize(
    "augment", [[], None, [HorizontalFlip(p=0.0)], [RandomCrop(padding=0)], [RandAugment()], ["os.system('x')"]]
)
def test_no_flip_and_no_crop_is_refused_in_one_line(augment):
    with pytest.raises(ConfigError, match="no views to average") as caught:
        tta_views(augment, "configs/mnist/lenet5.yaml")
    assert "\n" not in str(caught.value) and "HorizontalFlip" in str(caught.value)


def test_a_shift_is_the_random_crop_window_it_stands_for():
    images = torch.rand(2, 3, 8, 8)
    padded = F.pad(images, (2, 2, 2, 2))  # RandomCrop's zero padding; the window at (top, left) = (2 - dy, 2 - dx)
    for dy, dx in ((1, 0), (-1, 0), (0, 2), (0, -2), (2, -1)):
        assert torch.equal(View(dy=dy, dx=dx)(images), padded[:, :, 2 - dy : 10 - dy, 2 - dx : 10 - dx])
    assert torch.equal(View(flip=True)(images), images.flip(3))
    # normalized images: the pixels moved in are black in their scale
    fill = black((0.5, 0.4, 0.3), (0.2, 0.2, 0.1))
    shifted = View(dy=1)(images, fill)
    assert torch.allclose(shifted[:, :, 0], fill.view(1, 3, 1).expand(2, 3, 8))


def test_a_flip_invariant_model_keeps_its_probabilities():
    torch.manual_seed(0)
    linear = torch.nn.Linear(3, 5)

    def model(x: torch.Tensor) -> torch.Tensor:  # global average pooling: blind to mirroring
        return linear(x.mean(dim=(2, 3)))

    images = torch.rand(4, 3, 8, 8)
    plain = model(images).softmax(1)
    averaged = average_probabilities(model, images, views_from_augment([HorizontalFlip()]))
    assert torch.allclose(averaged, plain, atol=1e-6)
    # shifts are not invariant (black comes in) but the average is still a distribution
    crop = average_probabilities(model, images, views_from_augment([RandomCrop(2), HorizontalFlip()]))
    assert torch.allclose(crop.sum(1), torch.ones(4)) and not torch.allclose(crop, plain)


# --- test, fit --test_after_fit ---------------------------------------------------------------------------------


def test_fit_with_test_after_fit_logs_plain_and_tta_figures(tta_runs):
    report = json.loads((tta_runs[0] / "metrics.json").read_text())
    assert {"test/acc", "test/loss", "test/tta_acc", "test/tta_loss"} <= set(report)
    assert len(report["tta_views"]) == 10 and report["tta_views"][0] == "identity"
    # the views and the averaging of the trained-run path agree with the test step's
    trained = load_trained(tta_runs[0]).with_tta()
    datamodule = MNISTDataModule(data_dir=report_data_dir(tta_runs[0]), download=False)
    datamodule.setup("test")
    probabilities = trained.probabilities(datamodule.test_set.images)
    assert report["test/tta_acc"] == pytest.approx(
        (probabilities.argmax(1) == datamodule.test_set.labels).float().mean().item(), abs=1e-6
    )
    nll = F.nll_loss(probabilities.log(), datamodule.test_set.labels).item()
    assert report["test/tta_loss"] == pytest.approx(nll, rel=1e-4)


def report_data_dir(run: Path) -> str:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["data"]["init_args"]["data_dir"]


def test_test_with_tta_logs_both_and_without_it_nothing_changes(tta_runs, run_cli, tmp_path):
    run = tta_runs[1]
    common = ["--config", run / "config.yaml", "--ckpt_path", resolve_checkpoint(run)]
    code, err = run_cli("test", *common, "--tta", "false")
    assert code == 0, err
    plain = json.loads((run / "metrics.json").read_text())
    assert "test/tta_acc" not in plain and "tta_views" not in plain
    code, err = run_cli("test", *common, "--tta", "true")
    assert code == 0, err
    report = json.loads((run / "metrics.json").read_text())
    assert report["test/acc"] == pytest.approx(plain["test/acc"]) and 0 <= report["test/tta_acc"] <= 1
    assert report["test/tta_loss"] > 0


def test_a_recipe_without_flip_or_crop_is_refused_before_anything_runs(mnist_dir, run_cli, tmp_path):
    args = [*mnist_data(mnist_dir), *QUICK, "--trainer.default_root_dir", tmp_path / "runs"]
    code, err = run_cli("fit", *args, "--test_after_fit", "true", "--tta", "true")
    assert code == 2 and "no views to average" in one_error_line(err)
    assert not (tmp_path / "runs").exists()


def test_bad_tta_values_are_one_line(mnist_dir, run_cli, tta_runs, tmp_path):
    code, err = run_cli("test", "--config", tta_runs[0] / "config.yaml", "--tta", "maybe")
    assert code == 2 and "tta" in one_error_line(err)
    for tool in ("predict-files", "ensemble"):
        code, err = run_cli(tool, "--ckpt_path", tta_runs[0], "x.png", "--tta", "sometimes")
        assert code == 2 and "--tta" in one_error_line(err)


# --- predict-files, ensemble ------------------------------------------------------------------------------------


def test_predict_files_with_tta(tta_runs, run_cli, tmp_path):
    images, _ = synthetic_images(6, (28, 28, 1), seed=5)
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(tmp_path / f"{i}.png")
    out = tmp_path / "tta.csv"
    code, err = run_cli("predict-files", "--ckpt_path", tta_runs[0], tmp_path, "--tta", "true", "--output", out,
                        "--no_progress")  # fmt: skip
    assert code == 0, err
    assert "averaged over 10 views" in err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6
    trained = load_trained(tta_runs[0]).with_tta()
    expected = trained.probabilities(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    assert [float(r["probability"]) for r in rows] == pytest.approx(expected.max(1).values.tolist(), abs=1e-5)


def test_predict_files_refuses_tta_for_a_digits_run(mnist_dir, run_cli, tmp_path):
    run = fit_tiny_run(tmp_path / "plain", mnist_data(mnist_dir))
    Image.new("L", (28, 28)).save(tmp_path / "a.png")
    code, err = run_cli("predict-files", "--ckpt_path", run, tmp_path / "a.png", "--tta", "true",
                        "--output", tmp_path / "p.csv")  # fmt: skip
    assert code == 2 and "no views to average" in one_error_line(err)
    assert not (tmp_path / "p.csv").exists()


def test_ensemble_with_tta_adds_the_figures_over_views(tta_runs, mnist_dir, capsys, tmp_path):
    from lightning_cnn.__main__ import main

    out = tmp_path / "ensemble.json"
    main(["ensemble", "--ckpt_path", *map(str, tta_runs), "--data.data_dir", str(mnist_dir), "--tta", "true",
          "--output", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    tta = result["tta"]
    assert [row["ckpt_path"] for row in tta["members"]] == [row["ckpt_path"] for row in result["members"]]
    assert all(len(names) == 10 for names in tta["views"].values())
    assert 0 <= tta["ensemble_test_acc"] <= 1 and "test_acc" in tta["stacking"]
    printed = capsys.readouterr().out
    assert "with test-time augmentation: the softmax averaged over 10 views per image" in printed


def test_the_image_itself_costs_no_second_forward_pass():
    calls = []

    def model(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return x.mean(dim=(2, 3))

    images = torch.rand(2, 3, 4, 4)
    views = views_from_augment([HorizontalFlip()])
    given = average_probabilities(model, images, views, logits=model(images))
    assert len(calls) == 2  # the test step's own pass, and the mirror image's
    assert torch.allclose(given, average_probabilities(model, images, views))
