"""Any architecture of timm (``pip install 'lightning-cnn[timm]'``), from scratch or fine-tuned from pretrained
weights in the local Hugging Face cache or in a file. timm is imported when such a model is built, never before."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from torch import nn

from lightning_cnn.errors import ConfigError, require
from lightning_cnn.models.base import MODELS
from lightning_cnn.models.transfer import TransferClassifier, check_unfreeze


def import_timm() -> Any:
    """The timm module; missing, one ``MissingExtraError`` line with the command that installs it."""
    require("timm", "model: TimmClassifier")
    import timm

    return timm


def check_model_name(timm: Any, name: str) -> None:
    """``name`` must be one of ``timm.list_models()``, optionally with a weights tag (``resnet10t.c3_in1k``)."""
    architecture = name.split(".", 1)[0]
    if timm.is_model(architecture):
        return
    close = difflib.get_close_matches(architecture, timm.list_models(), n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(
        f"model.model_name: {name!r} is not a timm model; {hint}allowed: a name of timm.list_models(), e.g."
        " resnet10t, efficientnet_b0, convnext_atto"
    )


def hub_hint(timm: Any, name: str) -> str:
    """Where ``pretrained: true`` looks for the weights of ``name``, and how to put them there."""
    from huggingface_hub import constants

    config = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
    hub_id = getattr(config, "hf_hub_id", None)
    if not hub_id:
        return f"timm has no pretrained weights for {name}; give model.pretrained_path FILE or pretrained: false"
    return (
        f"the weights {hub_id} belong in the Hugging Face cache {constants.HF_HUB_CACHE} ($HF_HUB_CACHE): run"
        f" 'hf download {hub_id}' on a machine with network and copy its cache here, or save model.safetensors"
        f" from https://huggingface.co/{hub_id} and give model.pretrained_path FILE"
    )


@MODELS.register
class TimmClassifier(TransferClassifier):
    """Any timm architecture (``timm.list_models()``), built for the data module's channels and classes.

    ``pretrained: true`` loads timm's pretrained weights from the local Hugging Face cache (downloaded there when
    there is network; set ``HF_HUB_OFFLINE=1`` to never try); ``pretrained_path`` loads them from a file (a
    ``.safetensors``, ``.pth`` or ``.bin`` state dict of the same architecture). Either way the classifier is new
    when the number of classes differs, and the first conv is adapted by timm when the channels differ (grey: the
    RGB weights summed). Most pretrained weights saw about 224×224 images: set ``resize`` to upsample on the device.
    Loading a trained run never reads the pretrained weights again: the checkpoint holds every weight.

    Args:
        model_name: a name of ``timm.list_models()``, e.g. ``lcnet_050`` (the default), ``resnet10t``,
            ``efficientnet_b0``, optionally with a weights tag (``resnet10t.c3_in1k``).
        pretrained: start from timm's pretrained weights, read from the local Hugging Face cache.
        pretrained_path: start from the weights in this file instead.
        freeze_backbone: train only the new classifier; the frozen batch-norm layers stay in eval mode.
        unfreeze_at_epoch: with ``freeze_backbone``, the epoch at which the whole network starts training.
        resize: upsample images to ``resize``×``resize`` inside the model (bilinear), e.g. 224 for pretrained weights.
        model_args: further keyword arguments of ``timm.create_model``, e.g. ``{drop_rate: 0.2}`` or, for a vision
            transformer, ``{img_size: 32, patch_size: 4}``.
    """

    def __init__(
        self,
        model_name: str = "lcnet_050",
        pretrained: bool = False,
        pretrained_path: str | None = None,
        freeze_backbone: bool = False,
        unfreeze_at_epoch: int | None = None,
        resize: int | None = None,
        model_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_unfreeze(freeze_backbone, unfreeze_at_epoch)
        self.pretrained_backbone = pretrained or pretrained_path is not None
        if resize is not None and resize < 16:
            raise ConfigError(f"model.resize: {resize} is too small; allowed: null or a size >= 16")
        timm = import_timm()
        check_model_name(timm, model_name)
        options: dict[str, Any] = dict(model_args or {})
        for key in ("num_classes", "in_chans", "pretrained"):
            if key in options:
                raise ConfigError(f"model.model_args: {key} is set by TimmClassifier itself; leave it out")
        if pretrained_path is not None:
            path = Path(pretrained_path).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"model.pretrained_path: {path.absolute()} not found; put the weights file of {model_name} (a"
                    " .safetensors, .pth or .bin state dict) there, or give pretrained_path: null"
                )
            options["pretrained_cfg_overlay"] = {"file": str(path.absolute())}
        network = self._create(timm, model_name, pretrained or pretrained_path is not None, pretrained_path, options)
        self.model_name = model_name
        self.unfreeze_at_epoch = unfreeze_at_epoch
        upsample = [nn.Upsample(size=(resize, resize), mode="bilinear", align_corners=False)] if resize else []
        self.net = nn.Sequential(*upsample, network)
        if freeze_backbone:
            self.set_backbone_frozen(True)

    def _create(self, timm: Any, name: str, pretrained: bool, path: str | None, options: dict[str, Any]) -> nn.Module:
        """``timm.create_model`` for this data; a failure to find the weights or to build is one line."""
        try:
            return timm.create_model(
                name, pretrained=pretrained, num_classes=self.num_outputs, in_chans=self.input_shape[0], **options
            )
        except TypeError as err:  # an option the architecture does not take
            raise ConfigError(f"model.model_args: {name} does not take these options ({err})") from err
        except Exception as err:  # LocalEntryNotFoundError, OSError, RuntimeError (state dict), ...
            reason = " ".join(str(err).split())[:200] or type(err).__name__
            if path is not None:
                raise ConfigError(
                    f"model.pretrained_path: {path}: cannot load it into {name} ({reason}); give the weights file"
                    f" of {name}"
                ) from err
            if pretrained:
                offline = ", HF_HUB_OFFLINE is set" if os.environ.get("HF_HUB_OFFLINE") else ""
                raise ConfigError(
                    f"model.pretrained: cannot load the pretrained weights of {name} ({type(err).__name__}{offline});"
                    f" {hub_hint(timm, name)}"
                ) from err
            raise

    @property
    def network(self) -> nn.Module:
        """The timm model (the last module of ``net``)."""
        return self.net[-1]

    @property
    def head(self) -> nn.Module:
        """The new classifier: the only part that trains while the backbone is frozen."""
        return self.network.get_classifier()

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Lightning's loader, without reading the pretrained weights again: the checkpoint holds every weight."""
        kwargs.setdefault("pretrained", False)
        kwargs.setdefault("pretrained_path", None)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
