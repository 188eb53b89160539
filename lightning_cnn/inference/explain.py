"""Grad-CAM (Selvaraju et al. 2017): where in an image a CNN found the evidence for a class, and overlays of it.

The map is read from the model's last convolutional stage: the last module holding an ``nn.Conv2d`` whose output is
a 4-D (N, C, H, W) feature map larger than 1×1 (a 1×1 map, as after a global pool, only when there is no other),
found by forward hooks on every module during the same forward pass that is explained. This picks the last conv
of LeNet-5, the last conv group or stage of the other built-in models, and the last stage (or ``conv_head``) of
timm's CNNs. A model with no such map (the MLP), or whose last map feeds a token sequence (a vision transformer's
patch embedding), is refused with one ``ConfigError`` line. For each map channel k the weight is the spatial mean of
the gradient of the class logit; the map is ReLU(sum_k weight_k × channel_k), upsampled (bilinear) to the input size
and scaled to [0, 1] per image. A module that runs twice in one pass (``FastCIFARNet``'s mirror averaging) is read
on its first call, the image as given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from lightning_cnn.data.base import denormalize
from lightning_cnn.errors import ConfigError
from lightning_cnn.inference.trained import TrainedModel

COLORMAP = "jet"  # matplotlib's: blue (no evidence) to red (the strongest)
ALPHA = 0.5  # weight of the heat map in an overlay
MIN_SIZE = 112  # overlay files of small images are enlarged (nearest neighbour) to at least this many pixels
NAME_MAX = 120  # characters of a file's path kept in the name of its overlay file


@dataclass(frozen=True)
class GradCam:
    """Grad-CAM of a batch: ``maps`` (N, H, W) in [0, 1] at the input size, for ``classes`` (N,), with the model's
    ``logits`` (N, classes) and the name of the module whose output was read (``layer``)."""

    maps: Tensor
    classes: Tensor
    logits: Tensor
    layer: str


def model_label(model: nn.Module) -> str:
    """The model's class name, with the timm architecture of a ``TimmClassifier``."""
    name = getattr(model, "model_name", None)
    return f"{type(model).__name__} ({name})" if isinstance(name, str) else type(model).__name__


def _conv_bearing(model: nn.Module) -> set[nn.Module]:
    """The modules that are or hold an ``nn.Conv2d``."""
    return {module for module in model.modules() if any(isinstance(m, nn.Conv2d) for m in module.modules())}


def _forward_recording(model: nn.Module, images: Tensor) -> tuple[Tensor, str | None, Tensor | None]:
    """The logits of ``images``, and the name and output of the module Grad-CAM reads (None, None when none fits)."""
    bearing = _conv_bearing(model)
    names = {module: name for name, module in model.named_modules()}
    seen: set[nn.Module] = set()
    events: list[tuple[str, str, Tensor | None]] = []  # ("map", name, output) or ("tokens", name, None)

    def record(module: nn.Module, inputs: object, output: object) -> None:
        if module in seen or not isinstance(output, Tensor):
            return
        seen.add(module)
        if output.ndim == 4 and module in bearing:
            events.append(("map", names[module], output))
        elif output.ndim == 3:
            events.append(("tokens", names[module], None))

    handles = [module.register_forward_hook(record) for module in model.modules()]
    try:
        logits = model(images)
    finally:
        for handle in handles:
            handle.remove()
    maps = [i for i, (kind, _, _) in enumerate(events) if kind == "map"]
    larger = [i for i in maps if math.prod(events[i][2].shape[-2:]) > 1]  # type: ignore[union-attr]
    chosen = (larger or maps or [None])[-1]
    if chosen is None or any(kind == "tokens" for kind, _, _ in events[chosen + 1 :]):
        return logits, None, None
    return logits, events[chosen][1], events[chosen][2]


def refusal(model: nn.Module, option: str) -> ConfigError:
    """The one line that says Grad-CAM cannot explain ``model``, naming the option that asked for it."""
    return ConfigError(
        f"{option}: {model_label(model)} has no convolutional feature map before its classifier; Grad-CAM needs"
        f" convolutional layers: leave out {option}, or explain a CNN's run"
    )


def check_explainable(model: nn.Module, input_shape: Sequence[int], option: str = "explain") -> str:
    """The name of the module Grad-CAM reads in ``model``, found on one blank image of ``input_shape``; a model it
    cannot explain is a ``ConfigError`` naming ``option``."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, layer, _ = _forward_recording(model, torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    if layer is None:
        raise refusal(model, option)
    return layer


def grad_cam(model: nn.Module, images: Tensor, classes: Tensor | None = None, option: str = "explain") -> GradCam:
    """Grad-CAM of normalized ``images`` (N, C, H, W) for ``classes`` (default: each image's top class), the model
    in eval mode for the pass; a model it cannot explain is a ``ConfigError`` naming ``option``."""
    was_training = model.training
    model.eval()
    try:
        # gradients even inside Lightning's evaluation loops (inference mode); the input asks for them so that every
        # map does, even with the weights frozen, and is copied out of inference mode
        with torch.inference_mode(False), torch.enable_grad():
            logits, layer, activation = _forward_recording(model, images.detach().clone().requires_grad_(True))
            if layer is None or activation is None:
                raise refusal(model, option)
            chosen = logits.argmax(dim=1) if classes is None else classes.to(logits.device).long().clone()
            score = logits.gather(1, chosen[:, None]).sum()  # images do not interact in eval mode
            (gradient,) = torch.autograd.grad(score, activation, allow_unused=True)
    finally:
        model.train(was_training)
    activation = activation.detach().float()
    gradient = torch.zeros_like(activation) if gradient is None else gradient.float()
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = cam.amin(dim=(1, 2), keepdim=True)
    span = cam.amax(dim=(1, 2), keepdim=True) - low
    maps = torch.where(span > 0, (cam - low) / span.clamp(min=1e-12), torch.zeros_like(cam))
    return GradCam(maps.cpu(), chosen.cpu(), logits.detach().float().cpu(), layer)


def overlay(image: Tensor, heat: Tensor, alpha: float = ALPHA) -> np.ndarray:
    """An image (C, H, W) in [0, 1] (grey or RGB) with the heat map (H, W) in [0, 1] blended over it in the jet
    colours, as an RGB uint8 array (H, W, 3)."""
    from matplotlib import colormaps

    base = image.detach().float().cpu().clamp(0, 1)
    base = base.expand(3, -1, -1) if base.shape[0] == 1 else base[:3]
    colours = colormaps[COLORMAP](heat.detach().float().cpu().clamp(0, 1).numpy())[..., :3]
    blended = (1 - alpha) * base.permute(1, 2, 0).numpy() + alpha * colours
    return (blended * 255).round().clip(0, 255).astype(np.uint8)


def overlays(images: Tensor, maps: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Overlays of normalized ``images`` (N, C, H, W) and their ``maps`` (N, H, W), as floats (N, 3, H, W) in [0, 1]
    (what ``lightning_cnn.training.preview.image_grid`` draws)."""
    shown = denormalize(images.detach().float().cpu(), mean, std).clamp(0, 1)
    arrays = [overlay(image, heat) for image, heat in zip(shown, maps, strict=True)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255 if arrays else shown


def enlarged(array: np.ndarray, min_size: int = MIN_SIZE) -> Image.Image:
    """An RGB array as a PIL image enlarged by a whole factor (nearest neighbour) to at least ``min_size`` pixels."""
    image = Image.fromarray(array)
    factor = max(1, math.ceil(min_size / max(1, min(image.size))))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def overlay_name(path: Path, taken: set[str]) -> str:
    """A PNG file name for the overlay of ``path``, from its folders and name (``photos/cat.jpg``:
    ``photos__cat.jpg.png``), unique among ``taken`` (then added to it): a suffix ``-2``, ``-3``, ... where two paths
    give the same name."""
    parts = ["up" if part == ".." else part for part in Path(path).parts if part not in ("/", "\\", ".")]
    stem = re.sub(r"[^\w.+-]", "_", "__".join(parts)).lstrip(".")[-NAME_MAX:] or "image"
    name, n = f"{stem}.png", 1
    while name.lower() in taken:  # case-insensitive file systems see two names differing in case as one
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name.lower())
    return name


def prepare_folder(folder: Path, option: str = "explain") -> None:
    """Create the folder the overlays go to; one that cannot be (a file in its place, no permission) is a
    ``ConfigError`` naming ``option``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"{option}: cannot create the folder {folder} ({err.strerror or err}); choose another"
        ) from err


def write_overlays(
    trained: TrainedModel, items: Sequence[tuple[Path, int]], folder: Path, batch_size: int = 256, workers: int = 1
) -> int:
    """Write the Grad-CAM overlay of each (file, class) of ``items`` into ``folder`` as a PNG named by
    ``overlay_name``, enlarged to at least ``MIN_SIZE`` pixels; returns how many were written (a file that no longer
    decodes is left out)."""
    from lightning_cnn.data.image_files import decode_files

    prep = trained.preprocessing
    device = next(trained.model.parameters()).device
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    written = 0
    for start in range(0, len(items), batch_size):
        block = [path for path, _ in items[start : start + batch_size]]
        images, kept, _ = decode_files(block, list(range(len(block))), prep.size, prep.channels, workers)
        if not len(kept):
            continue
        inputs = prep.prepare(images.to(device))
        wanted = torch.tensor([items[start + i][1] for i in kept.tolist()])
        cam = grad_cam(trained.model, inputs, wanted, option="--explain")
        shown = denormalize(inputs.cpu(), prep.mean, prep.std).clamp(0, 1)
        for index, image, heat in zip(kept.tolist(), shown, cam.maps, strict=True):
            enlarged(overlay(image, heat)).save(folder / overlay_name(block[index], taken), format="PNG")
            written += 1
    return written
