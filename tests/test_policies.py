"""Augmentation policies: each operation matches torchvision's on the same image, each image of a batch draws
its own operations, and AutoAugment's table is the published CIFAR-10 policy. (The properties every
augmentation shares are in tests/test_augment.py.)"""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF

from lightning_cnn.data import policies as P


def uint8_batch(n: int = 8) -> torch.Tensor:
    torch.manual_seed(0)
    images = (torch.rand(n, 3, 32, 32) * 200 + 20).to(torch.uint8)
    images[:, :, :5] = 250  # a bright band, so the histogram and the extremes are not uniform
    return images


ONE = torch.ones(8)
# (our op at a magnitude, torchvision's functional at the same setting, largest difference in pixel levels):
# exact where both work on integer levels, within rounding where torchvision rounds to uint8 after blending
CASES = {
    "equalize": (lambda x: P.equalize(x, ONE), TF.equalize, 0),
    "posterize": (lambda x: P.posterize(x, ONE * 5), lambda u: TF.posterize(u, 3), 0),
    "solarize": (lambda x: P.solarize(x, ONE * (1 - 128 / 255)), lambda u: TF.solarize(u, 128), 0),
    "translate": (lambda x: P.translate_x(x, ONE * 5), lambda u: TF.affine(u, 0, [5, 0], 1.0, [0.0, 0.0]), 0),
    "autocontrast": (lambda x: P.autocontrast(x, ONE), TF.autocontrast, 1),
    "sharpness": (lambda x: P.sharpness(x, ONE * 0.8), lambda u: TF.adjust_sharpness(u, 1.8), 1.5),
    "contrast": (lambda x: P.contrast(x, ONE * 0.5), lambda u: TF.adjust_contrast(u, 1.5), 1),
    "color": (lambda x: P.color(x, ONE * 0.5), lambda u: TF.adjust_saturation(u, 1.5), 1),
    "brightness": (lambda x: P.brightness(x, -ONE * 0.5), lambda u: TF.adjust_brightness(u, 0.5), 1),
    "rotate": (
        lambda x: P.rotate(x, ONE * 20),
        lambda u: TF.rotate(u, 20, interpolation=TF.InterpolationMode.BILINEAR),
        1,
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_operation_matches_torchvision(name):
    ours, theirs, tolerance = CASES[name]
    images = uint8_batch()
    expected = torch.stack([theirs(image) for image in images]).float()
    got = ours(images.float() / 255) * 255
    assert (got - expected).abs().max() <= tolerance + 1e-3


@pytest.mark.parametrize("policy", [P.TrivialAugmentWide(), P.RandAugment(num_ops=1), P.AutoAugment()])
def test_images_of_one_batch_draw_their_own_operations(policy):
    torch.manual_seed(0)
    image = uint8_batch(1).float() / 255
    out = policy(image.repeat(256, 1, 1, 1))
    distinct = len(torch.unique(out.flatten(1), dim=0))
    # torchvision's v2 policies give a whole batch one operation: one distinct result, at most two
    assert distinct > 20


def test_policy_p_leaves_the_other_images_unchanged():
    torch.manual_seed(0)
    images = uint8_batch(1).float().div(255).repeat(400, 1, 1, 1)
    out = P.RandAugment(num_ops=2, magnitude=15, p=0.5)(images)
    unchanged = (out == images).flatten(1).all(dim=1).float().mean()
    assert 0.4 < unchanged < 0.65  # half skip the policy; a few more draw identity twice


def test_autoaugment_table_is_the_cifar10_policy():
    ops = set(P.policy_ops(wide=False, height=32, width=32))
    assert len(P.CIFAR10_POLICY) == 25
    for steps in P.CIFAR10_POLICY:
        assert len(steps) == 2
        for name, probability, level in steps:
            assert name in ops and 0 <= probability <= 1
            assert (level is None) == (name in {"AutoContrast", "Equalize", "Invert"})
            assert level is None or 0 <= level < P.AUTOAUGMENT_LEVELS
