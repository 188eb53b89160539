"""Weighted resamples of the training split (``data.sample_weights FILE``): as many images as the split, drawn with
replacement with probability proportional to one weight per image; boosting trains each member on one.

The file holds ``{"weights": 1-D float tensor, "seed": int}`` written by ``save_sample_weights`` and is read with
``torch.load(weights_only=True)``, so it can hold no code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from lightning_cnn.errors import ConfigError


def save_sample_weights(path: Path, weights: Tensor, seed: int) -> None:
    """Write ``weights`` (one per training image, in the split's order) and the seed of their draw to ``path``."""
    torch.save({"weights": weights.detach().to(torch.float64).cpu(), "seed": int(seed)}, path)


def load_sample_weights(path: str | Path, size: int) -> tuple[Tensor, int]:
    """The weights and seed in ``path``, checked: ``size`` of them, finite, non-negative, some positive."""
    where = f"data.sample_weights {path}"
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        weights, seed = record["weights"], int(record["seed"])
    except FileNotFoundError:
        raise ConfigError(f"{where} not found; give a weights file that 'lightning-cnn boost' wrote") from None
    except Exception as err:  # unpickling, a missing key or a wrong type: not a weights file
        raise ConfigError(f"{where} is not a sample weights file ({type(err).__name__}: {err})") from None
    if not isinstance(weights, Tensor) or weights.dim() != 1 or len(weights) != size:
        found = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ConfigError(
            f"{where} holds weights of shape {found}, the training split has {size} images; the weights were"
            " written for other data settings (val_size, split_seed, fold, test_size)"
        )
    weights = weights.to(torch.float64)
    if not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"{where}: the weights must be finite, non-negative and not all zero")
    return weights, seed


def weighted_indices(indices: Tensor, weights: Tensor, seed: int) -> Tensor:
    """``len(indices)`` of ``indices`` drawn with replacement, each with probability proportional to its weight,
    with a generator seeded by ``seed``."""
    draw = torch.multinomial(weights, len(indices), replacement=True, generator=torch.Generator().manual_seed(seed))
    return indices[draw]
