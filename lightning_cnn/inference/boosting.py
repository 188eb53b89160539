"""SAMME, multi-class AdaBoost (Zhu et al. 2009): the weight update between boosted members, their vote, and the
``boosting.json`` each member's run folder keeps, which ``ensemble`` reads for the members' vote weights α.

After member m, ``err_m = Σ w_i [wrong_i] / Σ w_i`` over the training split, ``α_m = log((1 - err_m) / err_m) +
log(K - 1)`` for K classes, ``w_i *= exp(α_m [wrong_i])``, normalized; the ensemble predicts
``argmax_k Σ_m α_m [member m predicts k]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

RECORD = "boosting.json"
# the error of a member that made no mistake on the training split, for its α: finite, and far above any other's
PERFECT_ERROR = 1e-10


@dataclass(frozen=True)
class SammeStep:
    """One member's step: its weighted error, its vote weight α (0 when it votes no better than chance), the
    training weights for the next member (normalized to sum 1), and why boosting stops here (None: it goes on)."""

    err: float
    alpha: float
    weights: Tensor
    stop: str | None


def samme_step(weights: Tensor | None, wrong: Tensor, num_classes: int) -> SammeStep:
    """The SAMME step of a member that got the training images ``wrong`` (bool, one per image) under ``weights``
    (None: uniform)."""
    wrong = wrong.to(torch.bool)
    w = torch.full((len(wrong),), 1.0 / len(wrong), dtype=torch.float64) if weights is None else weights.double()
    w = w / w.sum()
    err = float(w[wrong].sum())
    chance = 1.0 - 1.0 / num_classes
    if err >= chance:
        stop = f"its weighted training error {err:.4f} is no better than chance (1 - 1/{num_classes} = {chance:.4f})"
        return SammeStep(err, 0.0, w, stop)
    alpha = math.log((1.0 - err) / max(err, PERFECT_ERROR)) + math.log(num_classes - 1)
    if err == 0.0:
        return SammeStep(err, alpha, w, "it classifies every training image right (weighted error 0)")
    updated = w * torch.exp(alpha * wrong.double())
    return SammeStep(err, alpha, updated / updated.sum(), None)


def weights_summary(weights: Tensor | None, size: int) -> dict[str, float]:
    """What a weight vector looks like: its largest and smallest weight relative to uniform (1/N), and its effective
    sample size ``(Σ w)² / Σ w²`` (N when uniform)."""
    if weights is None:
        return {"min_over_uniform": 1.0, "max_over_uniform": 1.0, "effective_size": float(size)}
    w = weights.double() / weights.sum()
    return {
        "min_over_uniform": float(w.min() * len(w)),
        "max_over_uniform": float(w.max() * len(w)),
        "effective_size": float(1.0 / (w * w).sum()),
    }


def samme_vote(predictions: Sequence[Tensor], alphas: Sequence[float], num_classes: int) -> Tensor:
    """The α-weighted vote of the members' predicted classes, as each class's share of the votes (N, K): its argmax
    is SAMME's prediction."""
    votes = torch.zeros(len(predictions[0]), num_classes, dtype=torch.float64)
    for predicted, alpha in zip(predictions, alphas, strict=True):
        votes += alpha * torch.nn.functional.one_hot(predicted.long(), num_classes).double()
    return (votes / max(sum(alphas), PERFECT_ERROR)).float()


def soft_vote(probabilities: Sequence[Tensor], alphas: Sequence[float]) -> Tensor:
    """The α-weighted average of the members' softmax outputs (N, K): a soft variant of SAMME's vote."""
    total = sum(alpha * probs.double() for alpha, probs in zip(alphas, probabilities, strict=True))
    return (total / max(sum(alphas), PERFECT_ERROR)).float()  # type: ignore[operator]


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Keep a boosted member's record (its boost folder, place, α, error, weights) in its run folder."""
    (run_dir / RECORD).write_text(json.dumps(record, indent=2) + "\n")


def read_record(checkpoint_path: Path) -> dict[str, Any] | None:
    """The boosting record of the run a checkpoint belongs to (``RUN/checkpoints/X.ckpt`` or ``RUN/X.ckpt``), or
    None when it was not boosted (or the record is unreadable)."""
    for folder in (checkpoint_path.parent.parent, checkpoint_path.parent):
        path = folder / RECORD
        if path.is_file():
            try:
                record = json.loads(path.read_text())
                return record if isinstance(record, dict) and isinstance(record.get("alpha"), (int, float)) else None
            except (OSError, ValueError):
                return None
    return None
