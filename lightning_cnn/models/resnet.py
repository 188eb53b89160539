"""ResNet-18 from torchvision: a CIFAR stem for training from scratch, or ImageNet weights for transfer learning."""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
from torch import nn
from torchvision.models import ResNet, ResNet18_Weights, resnet18

from lightning_cnn.errors import ConfigError
from lightning_cnn.models.base import MODELS
from lightning_cnn.models.transfer import TransferClassifier, check_unfreeze


def hub_checkpoint(url: str) -> str:
    """Where ``torch.hub`` keeps (or would download) the checkpoint file at ``url``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def load_imagenet_state(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of ``ResNet18_Weights[name]``, from torch.hub's cache or downloaded into it.

    Offline, a missing file is one ``ConfigError`` line naming the folder and the file expected.
    """
    weights = ResNet18_Weights.DEFAULT if name == "DEFAULT" else ResNet18_Weights[name]
    path = hub_checkpoint(weights.url)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # URLError, OSError, RuntimeError (hash), ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"model.weights: {name}: cannot load ImageNet weights ({reason}); put {os.path.basename(path)}"
            f" from {weights.url} into {os.path.dirname(path)} (torch.hub.get_dir()/checkpoints, set by"
            " $TORCH_HOME), or use weights: null to train from scratch"
        ) from err


@MODELS.register
class ResNet18(TransferClassifier):
    """torchvision's ResNet-18, trained from scratch with a CIFAR stem or fine-tuned from ImageNet weights.

    From scratch (``weights: null``) the first conv is 3×3 stride 1 with no max-pool, so 28×28 and 32×32
    images keep their resolution into the residual stages. With ``weights: DEFAULT`` the original ImageNet
    stem (7×7 stride 2 + max-pool) and all ImageNet weights are kept and only the last layer is new; that mode
    expects larger images: set ``resize`` (e.g. 224, or at least 64) to upsample on the device, as the ImageNet
    weights saw objects at about 224×224. Grey 1-channel images use the first conv's weights summed over RGB.
    The data modules normalize with their own dataset's mean and std, not ImageNet's; fine-tuning absorbs it.

    Args:
        weights: ``null`` to train from scratch, or torchvision's ``DEFAULT`` / ``IMAGENET1K_V1`` ImageNet weights
            (read from torch.hub's cache, downloaded there when missing).
        freeze_backbone: train only the new last layer; the frozen batch-norm layers stay in eval mode.
        unfreeze_at_epoch: with ``freeze_backbone``, the epoch at which the whole network starts training.
        resize: upsample images to ``resize``×``resize`` inside the model (bilinear), e.g. 224 for ImageNet weights.
    """

    def __init__(
        self,
        weights: Literal["DEFAULT", "IMAGENET1K_V1"] | None = None,
        freeze_backbone: bool = False,
        unfreeze_at_epoch: int | None = None,
        resize: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        allowed = ["DEFAULT", *ResNet18_Weights.__members__]
        if weights is not None and weights not in allowed:
            raise ConfigError(f"model.weights: unknown {weights!r}; allowed: null, {', '.join(allowed)}")
        check_unfreeze(freeze_backbone, unfreeze_at_epoch)
        if resize is not None and resize < 32:
            raise ConfigError(f"model.resize: {resize} is too small; allowed: null or a size >= 32")
        channels = self.input_shape[0]
        backbone = resnet18(num_classes=self.num_outputs)
        if weights is None:
            backbone.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            backbone.maxpool = nn.Identity()
        else:
            state = load_imagenet_state(weights)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            if channels != 3:  # e.g. grey: the RGB conv applied to the image repeated 3 times
                grey = state["conv1.weight"].sum(dim=1, keepdim=True)
                state["conv1.weight"] = grey.repeat(1, channels, 1, 1) / channels
                backbone.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            backbone.load_state_dict(state, strict=False)
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.pretrained_backbone = weights is not None
        upsample = [nn.Upsample(size=(resize, resize), mode="bilinear", align_corners=False)] if resize else []
        self.net = nn.Sequential(*upsample, backbone)
        if freeze_backbone:
            self.set_backbone_frozen(True)

    @property
    def backbone(self) -> ResNet:
        """torchvision's ResNet, its ``fc`` the new head (the last module of ``net``)."""
        return self.net[-1]

    @property
    def head(self) -> nn.Linear:
        """The new last layer: the only part that trains while the backbone is frozen."""
        return self.backbone.fc
