"""Every registered model: output shape on 1×28×28 and 3×32×32, gradients to every trainable parameter, and enough
capacity to fit one small batch; then each architecture's own options and the one-line errors for wrong ones."""

from __future__ import annotations

import copy
import inspect
import urllib.error
from typing import get_args

import lightning
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from lightning_cnn.__main__ import main
from lightning_cnn.errors import ConfigError
from lightning_cnn.models import MLP, MODELS, AlexNet, ConvNet, LeNet5, ResNet18, blocks
from tests.helpers.models import MODEL_CASES, build
from tests.helpers.writers import synthetic_images

SHAPES = [(1, 28, 28), (3, 32, 32)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_forward_and_backward(name, shape):
    model = build(name, num_classes=7, input_shape=shape)
    logits = model(torch.randn(4, *shape))
    assert logits.shape == (4, 7)
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for param_name, param in trainable:
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_fits_one_small_batch(name, shape):
    """A few Adam steps fit one batch of 10 synthetic images: the training-mode accuracy on it reaches 90 %.

    Dropout is switched off (it is noise on purpose); batch norm uses batch statistics, as in training.
    """
    model = build(name, num_classes=10, input_shape=shape)
    pixels, classes = synthetic_images(10, (shape[1], shape[2], shape[0]), seed=0)
    images = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - 0.3) / 0.3
    labels = torch.from_numpy(classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()
    steps = 0
    for _ in range(40):
        logits = model(images)
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        if accuracy >= 0.9:
            break
        steps += 1
        optimizer.zero_grad()
        F.cross_entropy(logits, labels).backward()
        optimizer.step()
    print(f"{name} {shape}: {accuracy:.0%} after {steps} steps")
    assert accuracy >= 0.9


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cli_help_lists_every_option(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--model.help", name])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    own = [p for p in inspect.signature(MODELS[name].__init__).parameters if p not in ("self", "kwargs")]
    for option in [*own, "num_classes", "optimizer"]:
        assert f"--model.{option}" in shown


def test_lenet5_has_the_classic_parameter_count():
    model = LeNet5(num_classes=10, input_shape=(1, 28, 28))
    assert sum(p.numel() for p in model.parameters()) == 61_706
    original = LeNet5(input_shape=(1, 28, 28), activation="tanh", pooling="avg")
    layers = {type(m) for m in original.modules()}
    assert torch.nn.Tanh in layers and torch.nn.AvgPool2d in layers
    assert torch.nn.ReLU not in layers and torch.nn.MaxPool2d not in layers


def layer_types(model: nn.Module) -> list[type]:
    return [type(m) for m in model.modules()]


def test_mlp_is_flatten_hidden_classes():
    default = MLP(num_classes=10, input_shape=(1, 28, 28))
    assert [m.out_features for m in default.modules() if isinstance(m, nn.Linear)] == [128, 10]
    assert sum(p.numel() for p in default.parameters()) == 784 * 128 + 128 + 128 * 10 + 10
    deeper = MLP(num_classes=10, input_shape=(3, 32, 32), hidden=[64, 32], activation="gelu", dropout=0.1)
    assert [m.out_features for m in deeper.modules() if isinstance(m, nn.Linear)] == [64, 32, 10]
    assert layer_types(deeper).count(nn.GELU) == 2 and layer_types(deeper).count(nn.Dropout) == 2
    assert MLP(hidden=[], input_shape=(1, 28, 28))(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_convnet_default_layout():
    model = ConvNet(num_classes=10, input_shape=(1, 28, 28))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 7 * 7, 128), (128, 10)]
    assert layer_types(model).count(nn.MaxPool2d) == 2
    assert nn.BatchNorm2d not in layer_types(model) and nn.Dropout not in layer_types(model)


def test_convnet_dropout_sits_before_the_last_layer_and_batch_norm_after_each_conv():
    model = ConvNet(num_classes=10, input_shape=(3, 32, 32), dropout=0.5, batch_norm=True)
    flat = [m for m in model.net.modules() if not isinstance(m, nn.Sequential)]
    assert isinstance(flat[-2], nn.Dropout) and flat[-2].p == 0.5 and isinstance(flat[-1], nn.Linear)
    after_conv = [flat[i + 1] for i, m in enumerate(flat) if isinstance(m, nn.Conv2d)]
    assert all(isinstance(m, nn.BatchNorm2d) for m in after_conv) and len(after_conv) == 2
    assert all(m.bias is None for m in flat if isinstance(m, nn.Conv2d))  # the norm's shift replaces the bias


@pytest.mark.parametrize(
    ("norm", "layer"),
    [("batch", nn.BatchNorm2d), ("group", nn.GroupNorm), ("layer", nn.GroupNorm), ("instance", nn.InstanceNorm2d)],
)
def test_convnet_norms(norm, layer):
    model = ConvNet(num_classes=10, input_shape=(1, 28, 28), norm=norm, norm_groups=4)
    norms = [m for m in model.modules() if isinstance(m, layer)]
    assert len(norms) == 2
    if norm in ("group", "layer"):
        assert [m.num_groups for m in norms] == ([4, 4] if norm == "group" else [1, 1])
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", get_args(blocks.ActivationName))
def test_every_activation_builds_and_runs(name):
    assert name in blocks.ACTIVATIONS
    model = ConvNet(num_classes=10, input_shape=(1, 28, 28), channels=[4], hidden=[8], activation=name)
    kinds = {type(m) for m in model.modules()} & {type(blocks.activation(a)) for a in blocks.ACTIVATIONS}
    assert kinds == {type(blocks.activation(name))}
    assert torch.isfinite(model(torch.randn(2, 1, 28, 28))).all()


def test_convnet_building_blocks():
    model = ConvNet(
        num_classes=10, input_shape=(3, 32, 32), channels=[16, 32, 64], hidden=[], pooling="conv", head="gap",
        dilation=2, groups=4, spatial_dropout=0.1,
    )  # fmt: skip
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    stage_convs, pool_convs = convs[0::2], convs[1::2]
    assert [c.dilation for c in stage_convs] == [(2, 2)] * 3 and [c.groups for c in stage_convs] == [1, 4, 4]
    assert all(c.stride == (2, 2) for c in pool_convs) and len(pool_convs) == 3
    assert layer_types(model).count(nn.Dropout2d) == 3 and nn.AdaptiveAvgPool2d in layer_types(model)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 10)]  # gap: one value per channel
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    unpooled = ConvNet(input_shape=(1, 28, 28), channels=[8, 8], pooling="none", hidden=[])
    assert unpooled.net[-1].in_features == 8 * 28 * 28


def test_alexnet_has_five_convs_and_three_dropout_regularized_linear_layers():
    model = AlexNet(num_classes=10, input_shape=(1, 28, 28))
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [16, 48, 96, 64, 64]
    head = list(model.net)[1:]
    kinds = [type(m) for m in head]
    assert kinds.count(nn.Linear) == 3 and kinds.count(nn.Dropout) == 2
    assert kinds.index(nn.Dropout) < kinds.index(nn.Linear)  # dropout before the first two linear layers
    assert layer_types(AlexNet(input_shape=(3, 32, 32), batch_norm=True)).count(nn.BatchNorm2d) == 5
    wider = AlexNet(num_classes=10, input_shape=(3, 32, 32), width=0.5)
    assert [m.out_channels for m in wider.modules() if isinstance(m, nn.Conv2d)] == [32, 96, 192, 128, 128]


@pytest.mark.parametrize(
    ("build", "option", "allowed"),
    [
        (lambda: ConvNet(activation="relu6"), "model.activation", "allowed: relu, leaky_relu, elu, sigmoid, tanh"),
        (lambda: ConvNet(norm="weight"), "model.norm", "allowed: auto, batch, group, layer, instance, none"),
        (lambda: ConvNet(pooling="median"), "model.pooling", "allowed: max, avg, conv, none"),
        (lambda: ConvNet(head="flat"), "model.head", "allowed: flatten, gap"),
        (lambda: ConvNet(channels=[8] * 5), "model.channels", "allowed: at most 4 stages"),
        (lambda: ConvNet(channels=[]), "model.channels", "allowed: a non-empty list of positive integers"),
        (lambda: ConvNet(hidden=[128, 0]), "model.hidden", "allowed: a list of positive integers"),
        (lambda: ConvNet(groups=3), "model.groups", "allowed: a divisor"),
        (lambda: ConvNet(norm="group", norm_groups=5), "model.norm_groups", "allowed: a divisor"),
        (lambda: ConvNet(batch_norm=True, norm="layer"), "model.batch_norm", "allowed: set only one"),
        (lambda: ConvNet(dropout=1.0), "model.dropout", "allowed: [0.0, 1.0)"),
        (lambda: MLP(activation="softplus"), "model.activation", "allowed: relu, leaky_relu"),
        (lambda: LeNet5(pooling="conv"), "model.pooling", "allowed: max, avg"),
        (lambda: LeNet5(activation="swish2"), "model.activation", "allowed: relu"),
        (lambda: AlexNet(activation="selu"), "model.activation", "allowed: relu"),
        (lambda: ResNet18(weights="IMAGENET1K_V9"), "model.weights", "allowed: null, DEFAULT, IMAGENET1K_V1"),
        (lambda: ResNet18(unfreeze_at_epoch=2), "model.unfreeze_at_epoch", "allowed: null or an epoch"),
    ],
)
def test_wrong_option_fails_at_construction_with_one_line(build, option, allowed):
    with pytest.raises(ConfigError) as error:
        build()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{option}: ") and allowed in message


def test_cli_reports_a_shrinking_width_list_as_one_line(run_cli, mnist_dir, tmp_path):
    code, err = run_cli(
        "fit", "--model", "ConvNet", "--model.channels", "[8, 8, 8, 8, 8, 8]", "--data.data_dir", mnist_dir,
        "--trainer.default_root_dir", tmp_path, "--trainer.fast_dev_run", "true",
    )  # fmt: skip
    assert code != 0
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: model.channels: 6 stages [8, 8, 8, 8, 8, 8] shrink a 28×28 input below 1×1 at stage 5; allowed: at"
        " most 4 stages for this input (or pooling: none)"
    ]


def test_cli_rejects_an_unknown_activation_naming_the_choices(run_cli):
    code, err = run_cli("fit", "--model", "ConvNet", "--model.activation", "relu6")
    assert code != 0
    first = err.strip().splitlines()[0]
    assert "model" in first and "activation" in first and "relu, leaky_relu, elu" in first


# --- ResNet18: CIFAR stem from scratch, transfer from ImageNet weights, frozen backbone ---------------------------


def test_resnet18_from_scratch_has_a_cifar_stem():
    model = ResNet18(num_classes=10, input_shape=(3, 32, 32))
    assert model.backbone.conv1.kernel_size == (3, 3) and model.backbone.conv1.stride == (1, 1)
    assert isinstance(model.backbone.maxpool, nn.Identity) and model.head.out_features == 10


def backbone_state(model: ResNet18) -> dict[str, torch.Tensor]:
    """Backbone parameters and buffers (batch-norm running statistics included), without the head."""
    return {k: v.clone() for k, v in model.backbone.state_dict().items() if not k.startswith("fc.")}


def test_frozen_backbone_trains_only_the_head():
    model = ResNet18(num_classes=10, input_shape=(3, 32, 32), freeze_backbone=True)
    assert {p for p in model.parameters() if p.requires_grad} == set(model.head.parameters())
    before, head_before = backbone_state(model), copy.deepcopy(model.head.state_dict())
    optimizer = model.configure_optimizers()  # the classifier's own wiring: every parameter goes to the optimizer
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    model.train()
    F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()
    after = backbone_state(model)
    assert all(torch.equal(before[k], after[k]) for k in before), "backbone weights or BN statistics changed"
    assert not torch.equal(head_before["weight"], model.head.weight)
    assert not any(m.training for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d))


class _FreezeProbe(lightning.Callback):
    """Records per epoch whether backbone BN layers train, and whether backbone weights and BN statistics changed."""

    def __init__(self) -> None:
        self.bn_training: dict[int, bool] = {}
        self.weights_changed: dict[int, bool] = {}
        self.stats_changed: dict[int, bool] = {}
        self.start: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, model) -> None:
        self.start = backbone_state(model)

    def on_train_batch_start(self, trainer, model, batch, batch_idx) -> None:
        self.bn_training[trainer.current_epoch] = model.backbone.bn1.training

    def on_train_epoch_end(self, trainer, model) -> None:
        now, weights = backbone_state(model), {n for n, _ in model.backbone.named_parameters()}
        changed = {k for k in now if not torch.equal(self.start[k], now[k])}
        self.weights_changed[trainer.current_epoch] = bool(changed & weights)
        self.stats_changed[trainer.current_epoch] = bool(changed - weights)


def test_unfreeze_at_epoch_trains_the_backbone_from_that_epoch(tmp_path):
    model = ResNet18(num_classes=4, input_shape=(1, 28, 28), freeze_backbone=True, unfreeze_at_epoch=1)
    data = torch.utils.data.TensorDataset(torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]))
    probe = _FreezeProbe()
    trainer = lightning.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[probe], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=4))
    assert probe.bn_training == {0: False, 1: True}
    assert probe.weights_changed == {0: False, 1: True}  # the optimizer updates the backbone once it is unfrozen
    assert probe.stats_changed == {0: False, 1: True}
    assert not model.frozen and all(p.requires_grad for p in model.parameters())


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch.hub folder, and no network: a download attempt raises as it does offline."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_missing_imagenet_weights_offline_is_one_line_naming_the_cache(hub_dir):
    with pytest.raises(ConfigError) as error:
        ResNet18(weights="DEFAULT", input_shape=(3, 32, 32))
    message = str(error.value)
    assert "\n" not in message and message.startswith("model.weights: DEFAULT: ")
    assert f"resnet18-f37072fd.pth from {ResNet18_Weights.DEFAULT.url} into {hub_dir / 'checkpoints'}" in message


def test_imagenet_weights_are_loaded_from_the_hub_cache(hub_dir):
    imagenet = resnet18()  # stands in for the downloaded file: same layout, known values
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(imagenet.state_dict(), hub_dir / "checkpoints" / "resnet18-f37072fd.pth")

    rgb = ResNet18(weights="DEFAULT", num_classes=10, input_shape=(3, 32, 32), freeze_backbone=True, resize=64)
    assert torch.equal(rgb.backbone.layer3[1].conv2.weight, imagenet.layer3[1].conv2.weight)
    assert torch.equal(rgb.backbone.conv1.weight, imagenet.conv1.weight)
    assert rgb.backbone.conv1.kernel_size == (7, 7) and isinstance(rgb.backbone.maxpool, nn.MaxPool2d)
    assert rgb.head.out_features == 10
    assert {p for p in rgb.parameters() if p.requires_grad} == set(rgb.head.parameters())
    assert isinstance(rgb.net[0], nn.Upsample) and rgb(torch.randn(2, 3, 32, 32)).shape == (2, 10)

    grey = ResNet18(weights="IMAGENET1K_V1", num_classes=10, input_shape=(1, 28, 28))
    image = torch.randn(1, 1, 28, 28)
    stem = imagenet.conv1(image.repeat(1, 3, 1, 1))  # a grey image is an RGB image with three equal planes
    torch.testing.assert_close(grey.backbone.conv1(image), stem, rtol=1e-4, atol=1e-5)


def test_channels_last_trains_and_its_checkpoint_loads_into_a_plain_model(mnist_dir, tmp_path):
    from lightning_cnn.cli import cli_main
    from tests.helpers.runs import QUICK

    cli = cli_main(
        ["fit", "--model", "LeNet5", "--model.channels_last", "true", "--data.data_dir", str(mnist_dir), *QUICK,
         "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1",
         "--trainer.default_root_dir", str(tmp_path), "--preview.num_images", "0", "--report.enabled", "false"]
    )  # fmt: skip
    trained = cli.model.cpu().eval()
    convs = [m for m in trained.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert cli.trainer.global_step == 3
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    plain = LeNet5.load_from_checkpoint(last, channels_last=False).eval()
    assert not plain.channels_last
    assert all(m.weight.is_contiguous() for m in plain.modules() if isinstance(m, nn.Conv2d))
    images = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(plain(images), trained(images))
