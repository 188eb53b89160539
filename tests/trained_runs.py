"""Tiny trained runs for the tests of the tools that use them (predict-files, ensemble, export)."""

from __future__ import annotations

from pathlib import Path

from lightning_cnn.cli import cli_main
from tests.conftest import QUICK


def fit_tiny_run(root: Path, data: list[str], model: str = "LeNet5", seed: int = 1) -> Path:
    """Train ``model`` for one short epoch under ``root`` and return its run folder (``lightning_logs/version_0``)."""
    cli_main(
        [
            "fit",
            "--model", model,
            *data,
            *QUICK,
            "--seed_everything", str(seed),
            "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "8",
            "--trainer.default_root_dir", str(root),
            "--preview.num_images", "0",
        ]
    )  # fmt: skip
    runs = sorted((root / "lightning_logs").glob("version_*"))
    assert runs and (runs[-1] / "checkpoints" / "last.ckpt").is_file()
    return runs[-1]
