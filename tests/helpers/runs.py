"""Running the CLI in tests: options that keep a run tiny, a one-epoch trained run, and reading what a run logged."""

from __future__ import annotations

from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_cnn.cli import cli_main

# Options that keep a test run small and quiet; the tests add the data and the run folder.
QUICK = [
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.accelerator",
    "cpu",
    "--data.val_size",
    "0.2",
]


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


def scalars(run_dir: Path) -> dict[str, list[float]]:
    """Every scalar series TensorBoard's own reader finds in a run folder."""
    series: dict[str, list[float]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            series.setdefault(tag, []).extend(event.value for event in acc.Scalars(tag))
    return series


def macro_f1(confusion: torch.Tensor) -> float:
    """The mean over classes of F1, from a confusion matrix (rows: true class); a class never predicted nor
    present counts 0, as in torchmetrics."""
    confusion = confusion.double()
    tp = confusion.diag()
    f1 = 2 * tp / (confusion.sum(dim=0) + confusion.sum(dim=1))
    return float(torch.nan_to_num(f1).mean())
