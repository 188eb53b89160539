"""Every registered model: right output shape on 1×28×28 and 3×32×32 inputs, gradients reach every parameter."""

from __future__ import annotations

import pytest
import torch

from lightning_cnn.models import MODELS, LeNet5

SHAPES = [(1, 28, 28), (3, 32, 32)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_and_backward(name, shape):
    model = MODELS[name](num_classes=7, input_shape=shape)
    logits = model(torch.randn(4, *shape))
    assert logits.shape == (4, 7)
    logits.sum().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


def test_lenet5_has_the_classic_parameter_count():
    model = LeNet5(num_classes=10, input_shape=(1, 28, 28))
    assert sum(p.numel() for p in model.parameters()) == 61_706
    original = LeNet5(input_shape=(1, 28, 28), activation="tanh", pooling="avg")
    layers = {type(m) for m in original.modules()}
    assert torch.nn.Tanh in layers and torch.nn.AvgPool2d in layers
    assert torch.nn.ReLU not in layers and torch.nn.MaxPool2d not in layers
