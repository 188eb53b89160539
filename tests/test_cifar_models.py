"""The CIFAR ResNets (He et al. 2016: 6n+2 layers, shortcut option A or B) and FastCIFARNet (patch whitening fitted
to the first training batch, mirror averaging at test time)."""

from __future__ import annotations

import lightning
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_cnn.errors import ConfigError
from lightning_cnn.models import CIFARResNet, FastCIFARNet, ResNet20, ResNet32, ResNet44, ResNet56
from lightning_cnn.models.cifar_resnet import ZeroPadShortcut
from lightning_cnn.models.fast_net import PatchWhitening


@pytest.mark.parametrize(
    ("cls", "depth", "millions"),
    [(ResNet20, 20, 0.27), (ResNet32, 32, 0.46), (ResNet44, 44, 0.66), (ResNet56, 56, 0.85)],
)
def test_cifar_resnets_have_the_papers_layers_and_parameters(cls, depth, millions):
    model = cls(num_classes=10, input_shape=(3, 32, 32))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == depth  # 6n + 1 convs and the linear layer; option A shortcuts hold no weights
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sorted({c.out_channels for c in convs}) == [16, 32, 64]
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == millions  # the paper's Table 6
    projected = cls(num_classes=10, input_shape=(3, 32, 32), shortcut="B")
    assert [c.kernel_size for c in projected.modules() if isinstance(c, nn.Conv2d)].count((1, 1)) == 2


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2]) and not out[:, 16:].any()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CIFARResNet(depth=21), "model.depth: 21 is not 6n + 2; allowed: 8, 14, 20"),
        (lambda: ResNet20(shortcut="C"), "model.shortcut: unknown 'C'; allowed: A, B"),
        (lambda: FastCIFARNet(widths=[8] * 5), "model.widths: [8, 8, 8, 8, 8] has 5 groups; allowed: 1 to 4"),
    ],
)
def test_wrong_options_fail_with_one_line(build, message):
    with pytest.raises(ConfigError) as error:
        build()
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def patch_covariance(layer: PatchWhitening, images: torch.Tensor) -> torch.Tensor:
    """Covariance of the first half of the whitening conv's outputs (the other half is their negation)."""
    with torch.no_grad():
        out = F.conv2d(images, layer.weight)[:, : layer.weight.shape[0] // 2]
    return torch.cov(out.permute(1, 0, 2, 3).flatten(1))


def smooth_images(n: int, seed: int) -> torch.Tensor:
    """Random RGB images with strongly correlated neighbouring pixels and channels, like photographs."""
    g = torch.Generator().manual_seed(seed)
    grey = F.interpolate(torch.randn(n, 1, 8, 8, generator=g), size=32, mode="bilinear")
    return grey + 0.3 * F.interpolate(torch.randn(n, 3, 16, 16, generator=g), size=32, mode="bilinear")


def test_fast_net_whitens_the_first_training_batch_once_and_keeps_it_in_its_state(tmp_path):
    torch.manual_seed(0)
    images, labels = smooth_images(64, seed=1), torch.randint(0, 10, (64,))
    model = FastCIFARNet(num_classes=10, input_shape=(3, 32, 32), widths=[8, 8, 8])
    before = patch_covariance(model.whitening, images)
    assert (before - torch.eye(12)).abs().max() > 0.3  # the unfitted filters leave the patches correlated
    trainer = lightning.Trainer(
        max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, DataLoader(TensorDataset(images, labels), batch_size=64))
    assert model.whitening.fitted == 1
    after = patch_covariance(model.whitening, images)
    assert (after - torch.diag(after.diag())).abs().max() < 2e-3  # decorrelated
    # unit variance, but for the low-variance directions that WHITENING_EPS keeps from being amplified as much
    assert after[0, 0] == pytest.approx(1, abs=2e-3) and (after.diag() <= 1.001).all() and (after.diag() > 0.5).all()

    restored = FastCIFARNet(num_classes=10, input_shape=(3, 32, 32), widths=[8, 8, 8])
    restored.load_state_dict(model.state_dict())  # a checkpoint carries the whitening and that it was fitted
    restored.trainer = trainer
    restored.on_train_batch_start((smooth_images(64, seed=2), labels), 0)  # a resumed run: no refit
    assert torch.equal(restored.whitening.weight, model.whitening.weight)

    fixed = FastCIFARNet(num_classes=10, input_shape=(3, 32, 32), widths=[8, 8, 8], whiten_from_data=False)
    unfitted = fixed.whitening.weight.clone()
    fixed.trainer = trainer
    fixed.on_train_batch_start((images, labels), 0)
    assert torch.equal(fixed.whitening.weight, unfitted) and fixed.whitening.fitted == 0


def test_fast_net_averages_each_image_with_its_mirror_in_evaluation_only():
    torch.manual_seed(0)
    model = FastCIFARNet(num_classes=10, input_shape=(3, 32, 32), widths=[8, 8, 8]).eval()
    body = model.net.net
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), (body(x) + body(x.flip(-1))) / 2)
        assert torch.equal(model.train()(x), body(x))
    plain = FastCIFARNet(num_classes=10, input_shape=(3, 32, 32), widths=[8, 8, 8], flip_averaging=False)
    assert not any(type(m).__name__ == "FlipAveraging" for m in plain.modules())
