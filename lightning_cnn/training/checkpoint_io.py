"""Checkpoint files that are whole or absent, and verifiable: written beside their target, synced, renamed into
place, with their SHA-256 recorded beside them (``<name>.ckpt.sha256``), which every load checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lightning_cnn.checkpoints import record_sum, recorded_sums, sha256, sum_file
from lightning_cnn.internals import PathLike


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to ``<name>.tmp`` in the same folder, fsync, then ``os.replace`` over the target.

    Lightning's own save stages the bytes in the system temp folder and moves them; across file systems that
    move is a copy, which a kill can cut short. A rename within one folder is atomic, so a run killed at any
    moment leaves either the previous checkpoint or the new one, never half a file.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own transaction
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.tmp")
        try:
            with open(partial, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            digest = sha256(partial)
            record_sum(target, digest, *sorted(recorded_sums(target) or ()))  # the old file or the new one
            os.replace(partial, target)
            record_sum(target, digest)
        finally:
            partial.unlink(missing_ok=True)

    def remove_checkpoint(self, path: PathLike) -> None:
        """Remove a checkpoint (one that left the top k) and its SHA-256 record."""
        super().remove_checkpoint(path)
        if "://" not in str(path):
            sum_file(Path(path)).unlink(missing_ok=True)
