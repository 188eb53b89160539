"""MixUp and CutMix: soft targets that sum to 1 and match the mixed pixels, training batches only, and a run that
trains end to end on them (with focal loss and balanced class weights too)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from lightning_cnn.data import DATAMODULES, MNISTDataModule
from lightning_cnn.data.mix import CutMix, MixUp, MixUpOrCutMix
from lightning_cnn.models import LeNet5
from tests.helpers.runs import QUICK

MIXES = {
    "MixUp": MixUp(alpha=1.0),
    "CutMix": CutMix(alpha=1.0),
    "MixUpOrCutMix": MixUpOrCutMix(mixup_alpha=1.0, cutmix_alpha=1.0),
}


def flat_images(n: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image i is the constant i / n with label i: a mixed pixel tells which images it came from, and how much."""
    values = torch.arange(n, dtype=torch.float32) / n
    return values.view(n, 1, 1, 1).expand(n, 3, 8, 8).clone(), torch.arange(n), values


@pytest.mark.parametrize("name", MIXES)
def test_targets_sum_to_one_and_match_the_mixed_pixels(name):
    torch.manual_seed(0)
    images, labels, values = flat_images()
    mixed, targets = MIXES[name](images, labels, num_classes=len(labels))
    assert mixed.shape == images.shape and targets.shape == (len(labels), len(labels))
    assert torch.allclose(targets.sum(dim=1), torch.ones(len(labels)))
    assert ((targets > 0).sum(dim=1) <= 2).all()  # each image mixes with one partner at most
    # the mean pixel is the targets' mix of the two source values: the proportion in the labels is the one in
    # the image (for CutMix, the area of the pasted box)
    assert torch.allclose(mixed.mean(dim=(1, 2, 3)), targets @ values, atol=1e-5)
    assert (targets.max(dim=1).values < 0.999).float().mean() > 0.5  # most images really are mixed


def test_cutmix_pastes_pixels_and_mixup_blends_them():
    torch.manual_seed(0)
    images, labels, values = flat_images()
    cut, _ = CutMix(alpha=1.0)(images, labels, len(labels))
    assert torch.isin(cut, values).all()  # every pixel is one of the two images' own
    blended, targets = MixUp(alpha=1.0)(images, labels, len(labels))
    own = targets[torch.arange(len(labels)), labels]
    assert torch.allclose(blended.amin(dim=(1, 2, 3)), blended.amax(dim=(1, 2, 3)))  # blended evenly
    assert 0.35 < own.mean() < 0.65  # Beta(1, 1): lam uniform, a mean of 1/2 (self-pairs aside)


def test_p_zero_leaves_the_batch_and_one_hot_targets():
    images, labels, _ = flat_images()
    for mix in (MixUp(p=0.0), CutMix(p=0.0)):
        mixed, targets = mix(images, labels, len(labels))
        assert torch.equal(mixed, images)
        assert torch.equal(targets, torch.eye(len(labels)))


class TargetRecorder(LeNet5):
    """LeNet-5 that records the label tensors each stage receives."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen: dict[str, set[tuple[int, ...]]] = {"train": set(), "val": set(), "test": set()}

    def _step(self, batch, stage):
        self.seen[stage].add(tuple(batch[1].shape[1:]))
        return super()._step(batch, stage)


def test_only_training_batches_are_mixed_and_validation_keeps_class_indices(mnist_dir, tmp_path):
    dm = MNISTDataModule(data_dir=str(mnist_dir), val_size=200, batch_size=50, mix=MixUpOrCutMix())
    model = TargetRecorder(num_classes=10, input_shape=(1, 28, 28))
    trainer = L.Trainer(
        fast_dev_run=2, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)
    assert model.seen == {"train": {(10,)}, "val": {()}, "test": {()}}
    batch = (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.tensor([1, 2, 3, 4]))
    images, labels = dm.prepare_batch(batch, train=False)
    assert torch.equal(labels, batch[1]) and images.shape == (4, 1, 28, 28)


def test_mixed_training_with_focal_loss_and_balanced_weights_runs(run_cli, mnist_dir, tmp_path):
    code, err = run_cli(
        "fit", "--data.data_dir", mnist_dir, "--data.mix", "MixUpOrCutMix", "--model.loss", "FocalLoss",
        "--model.class_weights", "balanced", "--model.label_smoothing", "0.1", "--trainer.fast_dev_run", "2",
        "--trainer.default_root_dir", tmp_path, *QUICK,
    )  # fmt: skip
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data.mix", "MixUp", "--data.mix.alpha", "0"], "data.mix MixUp.alpha must be above 0"),
        (["--data.mix", "CutMix", "--data.mix.p", "2"], "data.mix CutMix.p must be in [0, 1]"),
        (["--data.mix", "Blend"], "data.mix: unknown class 'Blend'; choose one of CutMix, MixUp, MixUpOrCutMix"),
    ],
)
def test_bad_mix_options_are_one_line(run_cli, mnist_dir, tmp_path, args, expected):
    code, err = run_cli("fit", "--data.data_dir", mnist_dir, *args, "--trainer.default_root_dir", tmp_path, *QUICK)
    assert code != 0 and expected in err
    assert "Traceback" not in err and not (tmp_path / "lightning_logs").exists()


def test_training_accuracy_counts_the_dominant_label():
    model = LeNet5(num_classes=3, input_shape=(1, 28, 28))
    images = torch.randn(4, 1, 28, 28)
    predicted = model(images).argmax(dim=1)
    dominant = torch.stack([predicted[0], predicted[1], (predicted[2] + 1) % 3, (predicted[3] + 1) % 3])
    targets = 0.3 * torch.full((4, 3), 1 / 3) + 0.7 * torch.nn.functional.one_hot(dominant, 3)
    model._step((images, targets), "train")
    assert (int(model._train_correct), model._train_seen) == (2, 4)  # two of four dominant labels predicted


@pytest.mark.parametrize("name", sorted(DATAMODULES))
def test_every_data_module_takes_a_mix(name):
    import inspect

    assert "mix" in inspect.signature(DATAMODULES[name].__init__).parameters
