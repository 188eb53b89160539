"""Calibration of a classifier's confidence: the test split's reliability bins, and the ECE and MCE metrics.

A classifier is calibrated when, of the images it classifies with confidence p, a fraction p is right. The test
split is cut into ``CALIBRATION_BINS`` equal-width confidence bins (as torchmetrics' ``MulticlassCalibrationError``
bins them, so the diagram and ``test/ece``, ``test/mce`` agree); each bin's accuracy against its mean confidence is
the reliability diagram the report draws.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MulticlassCalibrationError

CALIBRATION_BINS = 15


def calibration_metrics(num_classes: int) -> dict[str, MulticlassCalibrationError]:
    """``ece`` (expected calibration error: the bins' |accuracy - confidence| weighted by their images) and ``mce``
    (maximum calibration error: the worst bin's), on class probabilities."""
    return {
        "ece": MulticlassCalibrationError(num_classes, n_bins=CALIBRATION_BINS, norm="l1"),
        "mce": MulticlassCalibrationError(num_classes, n_bins=CALIBRATION_BINS, norm="max"),
    }


class ReliabilityBins(Metric):
    """Per confidence bin: the number of images, the sum of their confidences and the number classified right.

    Sums only, so the states add up exactly over processes under DDP and cost the same for any number of images.
    ``compute`` returns a (3, bins) tensor: images, mean confidence and accuracy per bin (0 for an empty bin).
    """

    full_state_update = False

    def __init__(self, n_bins: int = CALIBRATION_BINS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_bins = n_bins
        for name in ("count", "confidence", "correct"):
            self.add_state(name, default=torch.zeros(n_bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probabilities: Tensor, target: Tensor) -> None:
        confidence, predicted = probabilities.float().max(dim=1)
        boundaries = torch.linspace(0, 1, self.n_bins + 1, device=confidence.device)
        # the bin rule of torchmetrics' calibration error: bin i holds confidences in [b_i, b_i+1), 1 in the last
        index = (torch.bucketize(confidence, boundaries, right=True) - 1).clamp(0, self.n_bins - 1)
        self.count.index_add_(0, index, torch.ones_like(confidence, dtype=torch.float64))
        self.confidence.index_add_(0, index, confidence.double())
        self.correct.index_add_(0, index, (predicted == target).double())

    def compute(self) -> Tensor:
        seen = self.count.clamp(min=1)
        return torch.stack([self.count, self.confidence / seen, self.correct / seen]).float()
