"""TransferClassifier: what fine-tuning a pretrained backbone needs, whatever the architecture: train only the new
head while the backbone stays frozen (its batch norms keep their statistics), and unfreeze it at a chosen epoch."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lightning_cnn.errors import ConfigError
from lightning_cnn.internals import BatchNorm
from lightning_cnn.models.base import ImageClassifier


def check_unfreeze(freeze_backbone: bool, unfreeze_at_epoch: int | None) -> None:
    """``unfreeze_at_epoch`` only makes sense for a frozen backbone, and from epoch 1 on."""
    if unfreeze_at_epoch is not None and (not freeze_backbone or unfreeze_at_epoch < 1):
        raise ConfigError(
            f"model.unfreeze_at_epoch: {unfreeze_at_epoch} needs freeze_backbone: true; allowed: null or an"
            " epoch >= 1 with freeze_backbone: true"
        )


class TransferClassifier(ImageClassifier):
    """An ``ImageClassifier`` whose ``net`` holds a backbone and a new ``head``; subclasses define ``head`` and call
    ``set_backbone_frozen(True)`` after building ``net`` when ``freeze_backbone`` is set."""

    unfreeze_at_epoch: int | None = None
    frozen: bool = False
    pretrained_backbone: bool = True  # subclasses say False when the backbone starts from random weights

    @property
    def head(self) -> nn.Module:
        """The new last layer: the only part that trains while the backbone is frozen."""
        raise NotImplementedError

    def set_backbone_frozen(self, frozen: bool) -> None:
        """Stop (or restart) gradients to everything but the head; frozen batch norms stay in eval mode."""
        self.frozen = frozen
        head = {id(p) for p in self.head.parameters()}
        for param in self.net.parameters():
            param.requires_grad_(not frozen or id(param) in head)
        self.train(self.training)

    def train(self, mode: bool = True) -> TransferClassifier:
        """As ``nn.Module.train``, but frozen batch-norm layers keep their running statistics (eval mode)."""
        super().train(mode)
        if self.frozen:
            head = set(self.head.modules())
            for module in self.net.modules():
                if isinstance(module, BatchNorm) and module not in head:
                    module.eval()
        return self

    def parameter_groups(self) -> list[dict[str, Any]]:
        """With ``unfreeze_at_epoch``, the frozen backbone joins the optimizer (and its LR schedule) from the start.

        Until it unfreezes it gets no gradients, and optimizers skip parameters without one.
        """
        if not (self.frozen and self.unfreeze_at_epoch is not None):
            return super().parameter_groups()
        frozen = [p for p in self.parameters() if not p.requires_grad]
        for param in frozen:
            param.requires_grad_(True)
        try:
            return super().parameter_groups()
        finally:
            for param in frozen:
                param.requires_grad_(False)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.frozen and not self.pretrained_backbone and self.trainer.ckpt_path is None:
            rank_zero_warn(
                f"model.freeze_backbone: true on a backbone with random weights ({type(self).__name__} without"
                " pretrained weights): only the last layer trains, on random features. Give pretrained weights, or"
                " freeze_backbone: false"
            )

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.frozen and self.unfreeze_at_epoch is not None and self.current_epoch >= self.unfreeze_at_epoch:
            self.set_backbone_frozen(False)
