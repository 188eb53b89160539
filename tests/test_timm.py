"""TimmClassifier: any timm architecture by name, pretrained weights from the Hugging Face cache or a file (offline),
a frozen backbone, one-line errors for a wrong name or a missing file, and timm imported only when used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import constants
from safetensors.torch import save_file
from torch import nn

from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.trained import load_trained
from lightning_cnn.models import TimmClassifier
from tests.helpers.runs import fit_tiny_run

ROOT = Path(__file__).parent.parent
NAME = "test_resnet"  # timm's own tiny ResNet; its pretrained weights live in timm/test_resnet.r160_in1k
HUB_ID = "timm/test_resnet.r160_in1k"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline (HF_HUB_OFFLINE): nothing is fetched, only the cache is read."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def put_in_cache(cache: Path, hub_id: str, state: dict[str, torch.Tensor]) -> None:
    """Lay ``state`` out as ``hf download hub_id`` would: a snapshot folder named by a commit, refs/main naming it."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_file(state, repo / "snapshots" / commit / "model.safetensors")


def test_any_timm_name_builds_for_the_data_shape():
    model = TimmClassifier(model_name="resnet10t", num_classes=7, input_shape=(1, 28, 28))
    assert model.network.conv1[0].in_channels == 1 and model.head.out_features == 7
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 7)
    vit = TimmClassifier(model_name="test_vit", model_args={"img_size": 32, "patch_size": 4}, input_shape=(3, 32, 32))
    assert vit(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_pretrained_weights_come_from_the_local_cache(hub_cache):
    imagenet = timm.create_model(NAME)  # stands in for the downloaded weights: same layout, known values
    put_in_cache(hub_cache, HUB_ID, imagenet.state_dict())
    model = TimmClassifier(model_name=NAME, pretrained=True, num_classes=10, input_shape=(3, 32, 32))
    assert torch.equal(model.network.layer2[0].conv1.weight, imagenet.layer2[0].conv1.weight)
    assert model.head.out_features == 10  # a new classifier for 10 classes, not the 1,000 ImageNet ones
    grey = TimmClassifier(model_name=NAME, pretrained=True, num_classes=10, input_shape=(1, 28, 28))
    stem = imagenet.conv1[0].weight
    torch.testing.assert_close(grey.network.conv1[0].weight, stem.sum(dim=1, keepdim=True))  # RGB summed


def test_missing_cache_offline_is_one_line_naming_the_cache_and_the_file(hub_cache):
    with pytest.raises(ConfigError) as error:
        TimmClassifier(model_name=NAME, pretrained=True)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"model.pretrained: cannot load the pretrained weights of {NAME}")
    assert f"belong in the Hugging Face cache {hub_cache}" in message and f"hf download {HUB_ID}" in message
    assert f"https://huggingface.co/{HUB_ID}" in message and "model.pretrained_path FILE" in message


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_pretrained_path_loads_a_weights_file(tmp_path, suffix):
    source = timm.create_model(NAME)
    path = tmp_path / f"weights{suffix}"
    save_file(source.state_dict(), path) if suffix == ".safetensors" else torch.save(source.state_dict(), path)
    model = TimmClassifier(model_name=NAME, pretrained_path=str(path), num_classes=4, input_shape=(3, 32, 32))
    assert torch.equal(model.network.layer1[0].conv2.weight, source.layer1[0].conv2.weight)
    assert model.head.out_features == 4


def test_missing_or_wrong_weights_file_is_one_line(tmp_path):
    missing = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(ConfigError) as error:
        TimmClassifier(model_name=NAME, pretrained_path=str(missing))
    assert str(error.value) == (
        f"model.pretrained_path: {missing} not found; put the weights file of {NAME} (a .safetensors, .pth or .bin"
        " state dict) there, or give pretrained_path: null"
    )
    other = tmp_path / "other.pth"
    torch.save(timm.create_model("test_efficientnet").state_dict(), other)
    with pytest.raises(ConfigError) as error:
        TimmClassifier(model_name=NAME, pretrained_path=str(other))
    assert "\n" not in str(error.value) and str(error.value).startswith(f"model.pretrained_path: {other}: cannot load")


def test_unknown_name_is_one_line_with_close_matches(run_cli, mnist_dir, tmp_path):
    code, err = run_cli("fit", "--model", "TimmClassifier", "--model.model_name", "resnet10", "--data.data_dir",
                        mnist_dir, "--trainer.default_root_dir", tmp_path, "--trainer.fast_dev_run", "1")  # fmt: skip
    assert code == 2
    assert err.startswith("error: model.model_name: 'resnet10' is not a timm model; did you mean resnet10t")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and not (tmp_path / "lightning_logs").exists()


def test_frozen_backbone_trains_only_the_classifier_and_keeps_bn_statistics():
    model = TimmClassifier(model_name=NAME, num_classes=5, input_shape=(3, 32, 32), freeze_backbone=True)
    assert {p for p in model.parameters() if p.requires_grad} == set(model.head.parameters())
    model.train()
    assert not any(m.training for m in model.network.modules() if isinstance(m, nn.BatchNorm2d))
    model.set_backbone_frozen(False)
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.network.modules() if isinstance(m, nn.BatchNorm2d))


def test_a_trained_run_loads_without_the_pretrained_weights(mnist_dir, tmp_path):
    """The run is fine-tuned from a weights file; once trained, its checkpoint alone holds the model."""
    weights = tmp_path / "weights.pth"
    torch.save(timm.create_model(NAME).state_dict(), weights)
    data = ["--data", "MNISTDataModule", "--data.data_dir", str(mnist_dir), "--data.download", "false",
            "--data.batch_size", "16", "--model.model_name", NAME, "--model.pretrained_path", str(weights)]  # fmt: skip
    run = fit_tiny_run(tmp_path / "runs", data, model="TimmClassifier")
    weights.unlink()
    trained = load_trained(run)
    assert isinstance(trained.model, TimmClassifier) and trained.model.network.default_cfg["architecture"] == NAME
    assert trained.probabilities(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape == (2, 10)


def test_importing_the_models_does_not_import_timm_and_without_timm_the_error_names_the_install():
    code = (
        "import sys; import lightning_cnn.models as m; assert 'timm' not in sys.modules, 'timm imported';"
        "sys.modules['timm'] = None\n"  # as if timm were not installed
        "try:\n    m.TimmClassifier()\nexcept Exception as err:\n    print(type(err).__name__, err)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "MissingExtraError model: TimmClassifier needs timm, which is not installed: pip install 'lightning-cnn[timm]'"
    )
