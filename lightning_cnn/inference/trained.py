"""A trained run, ready to use: the model from a checkpoint (or a run folder's best checkpoint) and the preprocessing
it was trained with, so new images reach it exactly as the training images did.

``predict-files``, ``ensemble`` and ``export`` all start here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_cnn.checkpoints import class_of, read_checkpoint
from lightning_cnn.data.base import normalize
from lightning_cnn.data.tta import View, average_probabilities, black, tta_views
from lightning_cnn.errors import ConfigError, CorruptDataError
from lightning_cnn.internals import saved_class_path
from lightning_cnn.models.base import ImageClassifier
from lightning_cnn.run_folder import resolve_checkpoint


@dataclass(frozen=True)
class Preprocessing:
    """What the data module did to every image before the model saw it."""

    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]

    @property
    def channels(self) -> int:
        return self.input_shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) every image is resized and centre-cropped to."""
        return self.input_shape[1], self.input_shape[2]

    def prepare(self, images: Tensor) -> Tensor:
        """uint8 (N, C, H, W) images as the model sees them: floats in [0, 1], normalized."""
        return normalize(images.float().div_(255), self.mean, self.std)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Preprocessing:
        return cls(
            input_shape=tuple(int(v) for v in record["input_shape"]),  # type: ignore[arg-type]
            mean=tuple(float(v) for v in record["mean"]),
            std=tuple(float(v) for v in record["std"]),
            classes=tuple(str(c) for c in record["classes"]),
        )


@dataclass
class TrainedModel:
    """A model in eval mode, its preprocessing, the checkpoint it came from and its data module's settings; with
    ``views`` (``with_tta``) its probabilities are averaged over those views of each image."""

    model: ImageClassifier
    preprocessing: Preprocessing
    checkpoint_path: Path
    datamodule_hparams: dict[str, Any]
    views: tuple[View, ...] = ()

    def with_tta(self) -> TrainedModel:
        """This run with test-time augmentation: the views its recorded training augmentation implies (see
        ``lightning_cnn.data.tta``); a ConfigError when it neither flipped nor cropped, or is multi-label."""
        if getattr(self.model, "multi_label", False):
            raise ConfigError(
                f"--tta: {self.checkpoint_path} is a multi-label run; test-time augmentation is not for it"
            )
        views = tta_views(self.datamodule_hparams.get("augment"), str(self.checkpoint_path))
        return replace(self, views=tuple(views))

    @torch.no_grad()
    def logits(self, images: Tensor, batch_size: int = 256) -> Tensor:
        """Class logits (N, classes), float32 on the CPU, of uint8 (N, C, H, W) images, on the model's device, in
        batches."""
        device = next(self.model.parameters()).device
        out = [
            self.model(self.preprocessing.prepare(chunk.to(device))).float().cpu() for chunk in images.split(batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, len(self.preprocessing.classes))

    def probabilities(self, images: Tensor, batch_size: int = 256, temperature: float = 1.0) -> Tensor:
        """Softmax class probabilities (N, classes) of uint8 (N, C, H, W) images, of the logits divided by
        ``temperature`` (a calibrated run's, see ``lightning_cnn.inference.calibration``; 1 leaves them); with
        ``views``, their mean over the views of each image (one forward pass per view). A multi-label run's are the
        sigmoid of each label's logit instead (N, labels), uncalibrated."""
        if getattr(self.model, "multi_label", False):
            return self.logits(images, batch_size).sigmoid()
        if self.views:
            return self._view_probabilities(images, batch_size, temperature)
        logits = self.logits(images, batch_size)
        return (logits / temperature if temperature != 1.0 else logits).softmax(dim=1)

    @torch.no_grad()
    def _view_probabilities(self, images: Tensor, batch_size: int, temperature: float) -> Tensor:
        prep, device = self.preprocessing, next(self.model.parameters()).device
        fill = black(prep.mean, prep.std)

        def logits_of(x: Tensor) -> Tensor:
            return self.model(x).float() / temperature

        out = [
            average_probabilities(logits_of, prep.prepare(chunk.to(device)), self.views, fill).cpu()
            for chunk in images.split(batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, len(prep.classes))

    def classify(self, paths: Sequence[str | Path], batch_size: int = 256) -> list[tuple[str, float]]:
        """(class name, probability) of each image file, decoded as the training images were (any mode PIL reads,
        resized and centre-cropped to the training size); a file that cannot be read is a ``CorruptDataError``."""
        from lightning_cnn.data.image_files import decode_files

        files = [Path(p) for p in paths]
        prep = self.preprocessing
        images, _, errors = decode_files(files, list(range(len(files))), prep.size, prep.channels, workers=1)
        if errors:
            raise CorruptDataError(f"cannot read {'; '.join(errors)}")
        best = self.probabilities(images, batch_size).max(dim=1)
        return [(prep.classes[i], p) for i, p in zip(best.indices.tolist(), best.values.tolist(), strict=True)]


def _preprocessing(checkpoint: dict[str, Any], path: Path, trust: bool = False) -> Preprocessing:
    """The record the data module saved (``ImageDataModule.state_dict``); older checkpoints rebuild the data module."""
    for value in checkpoint.values():
        if isinstance(value, dict) and isinstance(value.get("preprocessing"), dict):
            return Preprocessing.from_record(value["preprocessing"])
    from lightning_cnn.data import ImageDataModule

    hparams = checkpoint.get("datamodule_hyper_parameters") or {}
    cls = class_of(saved_class_path(hparams), ImageDataModule, "data module", path)
    datamodule = cls.load_from_checkpoint(path, augment=None, weights_only=not trust)
    return Preprocessing.from_record(datamodule.preprocessing())


def load_trained(path: str | Path, device: str | torch.device = "cpu", trust: bool = False) -> TrainedModel:
    """The model of checkpoint or run folder ``path`` in eval mode on ``device``, with its preprocessing. The file
    is loaded without running code from it, unless ``trust`` (the user's ``--trust_checkpoint``)."""
    checkpoint_path = resolve_checkpoint(path)
    checkpoint = read_checkpoint(checkpoint_path, trust=trust)
    hparams = checkpoint.get("hyper_parameters") or {}
    cls = class_of(saved_class_path(hparams), ImageClassifier, "model", checkpoint_path)
    try:
        model = cls.load_from_checkpoint(checkpoint_path, map_location="cpu", weights_only=not trust)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ConfigError(f"ckpt_path: cannot build the model of {checkpoint_path} ({err})") from err
    preprocessing = _preprocessing(checkpoint, checkpoint_path, trust)
    if tuple(model.input_shape) != preprocessing.input_shape or model.num_classes != len(preprocessing.classes):
        raise ConfigError(
            f"ckpt_path: {checkpoint_path}: the model takes {model.input_shape} images, {model.num_classes} classes,"
            f" but its data module recorded {preprocessing.input_shape} and {len(preprocessing.classes)} classes"
        )
    datamodule_hparams = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    return TrainedModel(model.to(device).eval(), preprocessing, checkpoint_path, datamodule_hparams)
