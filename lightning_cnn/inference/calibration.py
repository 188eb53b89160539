"""Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks"): one temperature T > 0 that
divides a trained run's logits, fit on its validation split by minimizing the negative log-likelihood.

Dividing by T changes no prediction (the order of the logits stays) but the confidences: T > 1 softens an
over-confident network. ``calibrate`` fits and stores T in the run folder (``calibration.json``); ``predict-files``,
``ensemble`` and ``export`` read it back (``applied_temperature``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_cnn.errors import ConfigError
from lightning_cnn.models.calibration import ReliabilityBins, calibration_metrics

CALIBRATION_FILE = "calibration.json"


def run_folder_of(checkpoint: Path) -> Path:
    """The run folder of a checkpoint file: ``RUN`` for ``RUN/checkpoints/NAME.ckpt``, else the file's folder."""
    folder = checkpoint.parent
    return folder.parent if folder.name == "checkpoints" else folder


def nll(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(logits / temperature)."""
    return float(F.cross_entropy(logits.double() / temperature, labels))


def ece(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> float:
    """Expected calibration error of softmax(logits / temperature), binned as ``test/ece`` is."""
    return probability_ece(scaled_probabilities(logits, temperature), labels)


def probability_ece(probabilities: Tensor, labels: Tensor) -> float:
    """Expected calibration error of class probabilities (N, C), such as an ensemble's averaged ones."""
    return float(calibration_metrics(probabilities.shape[1])["ece"](probabilities.float(), labels))


def scaled_probabilities(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """softmax(logits / temperature) in float32, computed in float64."""
    return (logits.double() / temperature).softmax(dim=1).float()


def calibration_figures(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> dict[str, float]:
    """ECE, MCE, NLL and accuracy of softmax(logits / temperature): what temperature scaling changes (all but the
    accuracy, as dividing by T > 0 keeps every prediction)."""
    probabilities = scaled_probabilities(logits, temperature)
    metrics = calibration_metrics(logits.shape[1])
    return {
        "ece": float(metrics["ece"](probabilities, labels)),
        "mce": float(metrics["mce"](probabilities, labels)),
        "nll": nll(logits, labels, temperature),
        "acc": float((probabilities.argmax(dim=1) == labels).float().mean()),
    }


def reliability_bins(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    """``ReliabilityBins``' (3, bins) result for softmax(logits / temperature): images, mean confidence and accuracy
    per bin, as the report's ``reliability.png`` draws them."""
    bins = ReliabilityBins()
    bins.update(scaled_probabilities(logits, temperature), labels)
    return bins.compute()


def fit_temperature(logits: Tensor, labels: Tensor, max_iter: int = 200) -> float:
    """The temperature T minimizing the NLL of softmax(logits / T) on (logits, labels).

    The optimization runs on log T (so T stays positive) with L-BFGS, which converges in a few steps on this
    one-parameter convex problem; should it end worse than no scaling at all, T = 1 is returned."""
    logits = logits.detach().double()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature) or nll(logits, labels, temperature) > nll(logits, labels):
        return 1.0
    return temperature


def stored_calibration(checkpoint: Path) -> dict[str, Any] | None:
    """The ``calibration.json`` of ``checkpoint``'s run folder, or None when there is none; a file that holds no
    positive temperature is a ``ConfigError`` naming it."""
    path = run_folder_of(checkpoint) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        temperature = float(record["temperature"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path} holds no temperature ({err}); run 'lightning-cnn calibrate' again") from err
    if not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"{path}: the temperature must be a positive number, got {temperature}")
    return {**record, "temperature": temperature, "path": path}


def applied_temperature(checkpoint: Path, calibrated: bool = True) -> tuple[float | None, str | None]:
    """The temperature to divide ``checkpoint``'s logits by: its run's stored one when ``calibrated`` and it was fit
    for this very checkpoint, else None (the raw logits); with one line saying which (None when the run has no
    ``calibration.json``)."""
    record = stored_calibration(checkpoint)
    if record is None:
        return None, None
    path, temperature = record["path"], record["temperature"]
    if not calibrated:
        return None, f"not calibrated: --calibrated false ignores the temperature {temperature:.4f} of {path}"
    fit_for = path.parent / str(record.get("checkpoint", ""))
    if fit_for.resolve() != Path(checkpoint).resolve():
        return None, (
            f"not calibrated: the temperature of {path} was fit for {fit_for}, not {checkpoint};"
            " run 'lightning-cnn calibrate' again"
        )
    note = f"calibrated: probabilities of the logits divided by the temperature {temperature:.4f} of {path}"
    return temperature, note
