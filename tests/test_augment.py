"""Batched augmentations: shape and dtype kept, identity at zero strength, random per sample, seeded,
different batch to batch, and applied to training batches only."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from lightning_cnn.data import MNISTDataModule
from lightning_cnn.data import augment as A
from lightning_cnn.data import policies as P
from lightning_cnn.errors import ConfigError
from lightning_cnn.models import SimpleCNN

# each augmentation at a strength that visibly changes images, and at zero strength
STRONG = {
    "RandomCrop": A.RandomCrop(padding=4),
    "HorizontalFlip": A.HorizontalFlip(p=0.5),
    "Rotation": A.Rotation(degrees=30),
    "RandomResizedCrop": A.RandomResizedCrop(scale=(0.3, 0.8)),
    "ColorJitter": A.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.2),
    "GaussianNoise": A.GaussianNoise(std=0.1),
    "RandomErasing": A.RandomErasing(p=0.5),
    "Cutout": A.Cutout(size=8, p=0.5),
    "RandAugment": P.RandAugment(num_ops=2, magnitude=9),
    "TrivialAugmentWide": P.TrivialAugmentWide(),
    "AutoAugment": P.AutoAugment(),
}
ZERO = {
    "RandomCrop": A.RandomCrop(padding=0),
    "HorizontalFlip": A.HorizontalFlip(p=0.0),
    "Rotation": A.Rotation(degrees=0),
    "RandomResizedCrop": A.RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0)),
    "ColorJitter": A.ColorJitter(),
    "GaussianNoise": A.GaussianNoise(std=0.0),
    "RandomErasing": A.RandomErasing(p=0.0),
    "Cutout": A.Cutout(size=0),
    "RandAugment": P.RandAugment(num_ops=0),
    "TrivialAugmentWide": P.TrivialAugmentWide(p=0.0),
    "AutoAugment": P.AutoAugment(p=0.0),
}
NAMES = sorted(A.AUGMENTATIONS)


def test_every_augmentation_is_covered():
    assert sorted(STRONG) == sorted(ZERO) == NAMES


def asymmetric_images(n: int = 16, channels: int = 3, size: int = 16) -> torch.Tensor:
    """The same non-symmetric colour image n times, so any per-sample difference comes from the augmentation."""
    torch.manual_seed(123)
    image = torch.rand(1, channels, size, size) * 0.6 + 0.2
    image[:, :, :4, :6] = 1.0  # a bright corner block: flips, crops and rotations all move it
    return image.repeat(n, 1, 1, 1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_and_dtype_are_kept(name, channels):
    images = asymmetric_images(channels=channels)
    for dtype in (torch.float32, torch.float64):
        out = STRONG[name](images.to(dtype))
        assert out.shape == images.shape and out.dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_zero_strength_is_the_identity(name):
    images = asymmetric_images()
    assert torch.allclose(ZERO[name](images), images, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_samples_of_one_batch_differ(name):
    torch.manual_seed(0)
    out = STRONG[name](asymmetric_images(n=32))
    distinct = torch.unique(out.flatten(1), dim=0)
    assert len(distinct) > 1, f"{name} gave every sample of the batch the same result"
    assert not torch.allclose(out, asymmetric_images(n=32))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_result_and_successive_batches_differ(name):
    images = asymmetric_images(n=32)
    torch.manual_seed(7)
    first, second = STRONG[name](images), STRONG[name](images)
    torch.manual_seed(7)
    assert torch.equal(STRONG[name](images), first)
    assert not torch.equal(first, second)  # the next batch (or epoch) draws new numbers


def test_horizontal_flip_mirrors_exactly():
    images = asymmetric_images(n=64)
    out = A.HorizontalFlip(p=1.0)(images)
    assert torch.equal(out, images.flip(3))


def test_random_crop_shifts_by_at_most_the_padding():
    images = torch.zeros(64, 1, 12, 12)
    images[:, :, 6, 6] = 1.0  # one bright pixel in the middle: a crop moves it by up to 2 either way
    out = A.RandomCrop(padding=2)(images)
    rows, cols = (out[:, 0] == 1).nonzero()[:, 1:].T
    assert len(rows) == 64 and rows.sub(6).abs().max() <= 2 and cols.sub(6).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 5


def test_cutout_and_erasing_zero_a_box_only():
    images = torch.ones(32, 3, 16, 16)
    for aug in (A.Cutout(size=4, p=1.0), A.RandomErasing(p=1.0, scale=(0.1, 0.1), ratio=(1.0, 1.0))):
        out = aug(images)
        zeroed = (out == 0).all(dim=1).flatten(1).sum(dim=1)
        assert set(out.unique().tolist()) <= {0.0, 1.0}
        assert (zeroed > 0).all() and (zeroed <= 26).all()


def test_color_jitter_leaves_gray_images_gray():
    gray = torch.rand(8, 1, 8, 8).repeat(1, 3, 1, 1)
    out = A.ColorJitter(saturation=0.0, hue=0.3)(gray)
    assert torch.allclose(out, gray, atol=1e-5)  # hue rotates chroma; a gray image has none


@pytest.mark.parametrize(
    ("build", "option"),
    [
        (lambda: A.RandomCrop(padding=-1), "RandomCrop.padding"),
        (lambda: A.HorizontalFlip(p=1.5), "HorizontalFlip.p"),
        (lambda: A.Rotation(degrees=-5), "Rotation.degrees"),
        (lambda: A.RandomResizedCrop(scale=(0.9, 0.1)), "RandomResizedCrop.scale"),
        (lambda: A.ColorJitter(hue=0.7), "ColorJitter.hue"),
        (lambda: A.GaussianNoise(std=-0.1), "GaussianNoise.std"),
        (lambda: A.RandomErasing(p=-0.1), "RandomErasing.p"),
        (lambda: A.Cutout(size=-3), "Cutout.size"),
        (lambda: P.RandAugment(magnitude=31), "RandAugment.magnitude"),
        (lambda: P.TrivialAugmentWide(p=2), "TrivialAugmentWide.p"),
        (lambda: P.AutoAugment(p=-1), "AutoAugment.p"),
    ],
)
def test_bad_options_fail_at_construction_naming_the_option(build, option):
    with pytest.raises(ConfigError, match=option.replace(".", r"\.")):
        build()


class RecordingAugmentation(A.BatchAugmentation):
    """Counts the images it sees: augmentation must only ever see training batches."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.seen += len(images)
        return images


def test_only_training_batches_are_augmented(mnist_dir, tmp_path):
    spy = RecordingAugmentation()
    dm = MNISTDataModule(data_dir=str(mnist_dir), val_size=200, batch_size=100, augment=[spy])
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=3, num_sanity_val_steps=2, accelerator="cpu", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    model = SimpleCNN(num_classes=10, input_shape=(1, 28, 28))
    trainer.fit(model, datamodule=dm)  # sanity check and a full validation epoch run too
    assert spy.seen == 300
    trainer.test(model, datamodule=dm)
    trainer.validate(model, datamodule=dm)
    assert spy.seen == 300
    uint8 = (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    dm.trainer = None  # outside a trainer (predicting in a script) nothing is augmented either
    dm.on_after_batch_transfer(uint8, 0)
    assert spy.seen == 300


def test_augmentation_runs_before_normalization(mnist_dir):
    dm = MNISTDataModule(data_dir=str(mnist_dir), augment=[A.HorizontalFlip(p=1.0)])
    images = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    out, _ = dm.prepare_batch((images, torch.tensor([1])), train=True)
    assert torch.allclose(dm.denormalize(out).flatten(), torch.tensor([1.0, 0.0]), atol=1e-6)
    out, _ = dm.prepare_batch((images, torch.tensor([1])), train=False)
    assert torch.allclose(dm.denormalize(out).flatten(), torch.tensor([0.0, 1.0]), atol=1e-6)


def test_short_names_work_on_the_command_line(run_cli, mnist_dir, tmp_path, capsys):
    from tests.helpers.runs import QUICK

    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, "--data.augment+=RandomCrop", "--data.augment.padding", "2",
        "--data.augment+=Rotation", "--trainer.fast_dev_run", "true", "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    assert code == 0, err
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, "--data.augment+=HorizontalFlip", "--data.augment.p", "2")
    assert code != 0 and "HorizontalFlip.p" in err and "[0, 1]" in err


def test_image_grid_is_uint8_chw_with_a_tile_per_image():
    from lightning_cnn.training.preview import CAPTION, MIN_TILE, image_grid

    grid = image_grid(torch.rand(10, 1, 28, 28), torch.arange(10), tuple("abcdefghij"))
    assert grid.dtype == torch.uint8 and grid.shape[0] == 3
    # 10 images → 4 columns × 3 rows of tiles enlarged 3× (28 → 84 ≥ MIN_TILE), each with a caption band
    assert grid.shape[1:] == (3 * (84 + CAPTION + 2), 4 * (84 + 2)) and MIN_TILE <= 84
    white = image_grid(torch.ones(1, 3, 32, 32))
    assert white.float().mean() > 250  # [0, 1] maps to [0, 255], not to a sliver of it


def test_fit_logs_the_first_augmented_batch_to_tensorboard(run_cli, mnist_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.helpers.runs import QUICK

    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, "--data.augment+=RandomCrop", "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--preview.num_images", "8",
        "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    assert code == 0, err
    events = EventAccumulator(str(next((tmp_path / "lightning_logs").glob("version_*"))))
    events.Reload()
    assert "train/first_batch" in events.Tags()["images"]
    (image,) = events.Images("train/first_batch")
    # 8 tiles of 28×28 enlarged to 84: 3 columns × 3 rows, a caption band under each
    assert (image.step, image.width, image.height) == (0, 3 * (84 + 2), 3 * (84 + 12 + 2))
