"""A look at the augmentations: the first training batch, de-normalized, as a labelled image grid.

During ``fit`` the ``AugmentationPreview`` callback logs the grid to every logger (``train/first_batch``); the
``preview`` tool (``lightning_cnn.tools.preview``) writes the same kind of grid for a config without training.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from lightning_cnn.data import ImageDataModule
from lightning_cnn.errors import ConfigError
from lightning_cnn.training.loggers import log_image

CAPTION = 12  # pixels of caption under each tile
MIN_TILE = 64  # small images are enlarged (nearest neighbour) to at least this many pixels


def image_grid(
    images: Tensor,
    labels: Tensor | None = None,
    classes: tuple[str, ...] | None = None,
    predictions: Tensor | None = None,
) -> Tensor:
    """Images (N, C, H, W) in [0, 1] as one uint8 RGB grid (3, H', W'), each tile captioned with its class.

    Tiles are enlarged by a whole factor to at least ``MIN_TILE`` pixels so 28×28 or 32×32 images stay
    readable next to their captions. With ``predictions`` a second caption line gives the predicted class;
    a mistake gets it in red, a red frame and a red cross in the tile's corner.
    """
    images = images.detach().float().clamp(0, 1).cpu()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    n, _, h, w = images.shape
    factor = max(1, math.ceil(MIN_TILE / min(h, w)))
    caption = CAPTION * (2 if predictions is not None else 1)
    tile_h, tile_w = h * factor + caption, w * factor
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = Image.new("RGB", (cols * (tile_w + 2), rows * (tile_h + 2)), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    tiles = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    chars = max(1, tile_w // 6)

    def name(label: int) -> str:
        return (classes[label] if classes and label < len(classes) else str(label))[:chars]

    for i, tile in enumerate(tiles):
        x, y = (i % cols) * (tile_w + 2) + 1, (i // cols) * (tile_h + 2) + 1
        bottom = y + h * factor
        grid.paste(Image.fromarray(tile).resize((tile_w, h * factor), Image.Resampling.NEAREST), (x, y))
        if labels is not None:
            draw.text((x + 1, bottom), name(int(labels[i])), fill="black", font=font)
        if predictions is not None:
            predicted = int(predictions[i])
            wrong = labels is not None and predicted != int(labels[i])
            draw.text((x + 1, bottom + CAPTION), name(predicted), fill="red" if wrong else "green", font=font)
            if wrong:
                draw.rectangle((x, y, x + tile_w - 1, bottom - 1), outline="red", width=2)
                size = max(6, tile_w // 6)
                right = x + tile_w - 4
                draw.line((right - size, y + 3, right, y + 3 + size), fill="red", width=2)
                draw.line((right - size, y + 3 + size, right, y + 3), fill="red", width=2)
    return torch.from_numpy(np.asarray(grid).copy()).permute(2, 0, 1)


def batch_grid(datamodule: ImageDataModule, images: Tensor, labels: Tensor, num_images: int) -> Tensor:
    """The grid of a normalized batch: de-normalized with the data module's statistics, labelled with its classes
    (a mixed batch's soft targets by their dominant class)."""
    shown = datamodule.denormalize(images[:num_images].float())
    labels = labels.argmax(dim=1) if labels.ndim == 2 else labels
    return image_grid(shown, labels[:num_images], getattr(datamodule, "classes", None))


class AugmentationPreview(L.Callback):
    """Log the first training batch of a run, augmented and de-normalized, to every logger as a labelled grid.

    Args:
        num_images: images shown; 0 turns the preview off.
    """

    def __init__(self, num_images: int = 32) -> None:
        if num_images < 0:
            raise ConfigError(f"preview.num_images must be 0 or more, got {num_images}")
        self.num_images = num_images

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.num_images == 0 or batch_idx != 0 or trainer.global_step != 0 or not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        if not trainer.loggers or trainer.fast_dev_run or not isinstance(datamodule, ImageDataModule):
            return
        images, labels = batch
        grid = batch_grid(datamodule, images, labels, self.num_images)
        log_image(trainer, "train/first_batch", grid.permute(1, 2, 0).numpy(), trainer.global_step)
