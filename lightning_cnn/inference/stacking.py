"""Stacking: a multinomial logistic regression that learns how much to trust each ensemble member for each class,
fit on the members' softmax outputs for the validation split (images none of them trained on)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class Stacker:
    """Weights (members × classes → classes) and biases of the fitted logistic regression."""

    weight: Tensor
    bias: Tensor

    def probabilities(self, member_probabilities: Sequence[Tensor]) -> Tensor:
        """The combined class probabilities (N, C) from each member's (N, C) softmax outputs."""
        return (features(member_probabilities) @ self.weight + self.bias).softmax(dim=1)


def features(member_probabilities: Sequence[Tensor]) -> Tensor:
    """The members' softmax outputs side by side: (N, members × classes)."""
    return torch.cat([p.float() for p in member_probabilities], dim=1)


def fit_stacker(
    member_probabilities: Sequence[Tensor], labels: Tensor, l2: float = 1e-3, max_iter: int = 200
) -> Stacker:
    """Minimize the mean cross-entropy plus ``l2`` × the squared weights with L-BFGS (a convex problem: one
    optimum, reached in a few dozen iterations for thousands of images); starts from plain averaging."""
    x = features(member_probabilities)
    classes = member_probabilities[0].shape[1]
    members = len(member_probabilities)
    # averaging is the stacker whose weights are the identity per member, scaled: a start that is already good
    start = torch.eye(classes).repeat(members, 1) * (4.0 / members)
    weight = start.clone().requires_grad_(True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, labels) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return Stacker(weight.detach(), bias.detach())
