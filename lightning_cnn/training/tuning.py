"""Lightning's learning-rate finder and batch-size scaler (``lightning.pytorch.tuner.Tuner``) on a configured model
and data module, for ``lightning-cnn tune``: the Trainer they run in, what cannot be tuned, which config key takes
the learning rate found, and the figure of the search.

The search runs in a Trainer of its own, built from the configured trainer options (accelerator, precision,
clipping, accumulation) on one device, without loggers, callbacks or checkpoints: nothing of a run is written, only
Lightning's temporary checkpoint of the initial weights, in a folder the caller gives and removes. The finder
puts its own exponential schedule in place of the configured one for the search (``_LRFinder._exchange_scheduler``),
so a per-step schedule (warmup-cosine, one-cycle) never moves the learning rates it tries.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.strategies import ParallelStrategy
from lightning.pytorch.tuner import Tuner
from torch.optim.lr_scheduler import CyclicLR, OneCycleLR, ReduceLROnPlateau

from lightning_cnn.errors import ConfigError, DivergedError

SKIP_BEGIN = 10  # points Lightning's suggestion leaves out at the start of the search

# trainer options the search leaves out: it logs, saves and calls back nothing, and runs until the tuner stops it
LEFT_OUT = ("logger", "callbacks", "profiler", "max_time", "min_epochs", "min_steps", "max_steps", "max_epochs")


@dataclass
class LrSearch:
    """One learning-rate range test: the learning rates tried, the smoothed training loss after each, Lightning's
    suggestion (the steepest descent of the loss; None when too few points), and the batch size it ran with."""

    lrs: list[float]
    losses: list[float]
    suggestion: float | None
    batch_size: int | None = None
    steps: int = field(init=False)

    def __post_init__(self) -> None:
        self.steps = len(self.lrs)


def class_of(section: Any) -> type | None:
    """The class a config section names (``{class_path: ..., init_args: ...}``, a class path, or a class)."""
    path = section.get("class_path") if hasattr(section, "get") else section
    if isinstance(path, type) or path is None:
        return path
    module, _, name = str(path).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return found if isinstance(found, type) else None


def class_path(section: Any) -> str | None:
    """The class path a config section gives (a class given as an object: its module and name)."""
    path = section.get("class_path") if hasattr(section, "get") else section
    if isinstance(path, type):
        return f"{path.__module__}.{path.__qualname__}"
    return str(path) if path else None


def lr_key(model: Any) -> tuple[str, str]:
    """Where the model config's learning rate lives: (``optimizer`` or ``lr_scheduler``, its argument). A one-cycle
    schedule sets the optimizer's learning rate itself, from its ``max_lr``; every other schedule scales the
    optimizer's ``lr``."""
    scheduler = class_of(model.init_args.get("lr_scheduler"))
    if scheduler is not None and issubclass(scheduler, OneCycleLR):
        return "lr_scheduler", "max_lr"
    return "optimizer", "lr"


def configured_lr(model: Any) -> float | None:
    """The learning rate the config gives where ``lr_key`` says the found one goes (None when unset there)."""
    section, argument = lr_key(model)
    entry = model.init_args.get(section)
    init_args = entry.get("init_args") if hasattr(entry, "get") else None
    value = init_args.get(argument) if hasattr(init_args, "get") else None
    return float(value) if isinstance(value, (int, float)) else None


def lr_fragment(model: Any, lr: float) -> dict[str, Any]:
    """The config fragment that gives the model config ``model`` learning rate ``lr`` where its optimizer and
    schedule take it: ``model.init_args.optimizer.init_args.lr`` or, for one-cycle, the schedule's ``max_lr``.
    The class path is written too, so the value stays with the optimizer (schedule) it was found for; the other
    arguments of a config given before the fragment are kept."""
    section, argument = lr_key(model)
    entry: dict[str, Any] = {"init_args": {argument: lr}}
    path = class_path(model.init_args.get(section))
    if path:
        entry = {"class_path": path, **entry}
    return {"model": {"init_args": {section: entry}}}


def check_tunable(config: Any, datamodule: Any, scale_batch_size: bool) -> None:
    """Refuse, in one line, a config the tuner cannot search: several devices or processes, ``fast_dev_run``, a
    cyclic schedule (it sets both ends of its range itself), a plateau schedule that never sees a validation, the
    batch-size scaler on a data module without ``batch_size``."""
    trainer = config.get("trainer") or {}
    devices, strategy, nodes = trainer.get("devices"), trainer.get("strategy"), trainer.get("num_nodes") or 1
    several = (
        devices == -1
        or (isinstance(devices, int) and devices > 1)
        or (isinstance(devices, (list, tuple)) and len(devices) > 1)
    )
    name = strategy if isinstance(strategy, str) else type(strategy).__name__ if strategy is not None else "auto"
    if several or nodes > 1 or any(kind in name.lower() for kind in ("ddp", "fsdp", "deepspeed")):
        raise ConfigError(
            f"tune runs on one device, not trainer.devices={devices} num_nodes={nodes} strategy={name}; give"
            " --trainer.devices 1 --trainer.strategy auto (the learning rate found is for that per-device batch)"
        )
    if trainer.get("fast_dev_run"):
        raise ConfigError("tune cannot search with trainer.fast_dev_run (Lightning skips the tuner); leave it out")
    scheduler = class_of(config.model.init_args.get("lr_scheduler"))
    if scheduler is not None and issubclass(scheduler, CyclicLR):
        raise ConfigError(
            "tune: model.lr_scheduler CyclicLR sets both ends of its learning-rate range itself (base_lr, max_lr);"
            " tune the recipe without it, then set them around the suggestion"
        )
    no_validation = trainer.get("limit_val_batches") in (0, 0.0) and trainer.get("limit_val_batches") is not None
    if scheduler is not None and issubclass(scheduler, ReduceLROnPlateau) and no_validation:
        raise ConfigError(
            "tune: model.lr_scheduler ReduceLROnPlateau watches a validation metric, but trainer.limit_val_batches"
            " is 0: the schedule would never step; validate (leave limit_val_batches out) or choose another schedule"
        )
    if scale_batch_size and not isinstance(getattr(datamodule, "batch_size", None), int):
        raise ConfigError(
            f"tune --batch_size: the data module {type(datamodule).__name__} has no batch_size to scale; leave"
            " --batch_size out, or use a data module with a batch_size argument"
        )


def search_trainer(options: dict[str, Any], root: Path, steps: int) -> L.Trainer:
    """A Trainer for one tuner search: the configured ``options`` on one device, without logger, callbacks or
    checkpoints, with enough epochs for ``steps`` steps (the tuner stops it), its temporary files in ``root``."""
    kept = {key: value for key, value in options.items() if key not in LEFT_OUT}
    if kept.get("devices") in (None, "auto"):
        kept["devices"] = 1  # "auto" would take every GPU of the machine, and DDP with them
    kept.update(
        logger=False, callbacks=[], enable_checkpointing=False, enable_model_summary=False,
        enable_progress_bar=False, num_sanity_val_steps=0, default_root_dir=str(root),
        # the epochs only bound the search: each has a batch at least; the configured schedule is built over them
        # but never stepped (the tuner's takes its place)
        max_epochs=max(steps, int(options.get("max_epochs") or 1)),
        # the model checks its losses for NaN when it logs them: not during the search, whose end is a loss that
        # blows up (Lightning stops it at 4 × the best)
        log_every_n_steps=steps + 1,
    )  # fmt: skip
    trainer = L.Trainer(**kept)
    if isinstance(trainer.strategy, ParallelStrategy) or trainer.world_size > 1:
        raise ConfigError(
            f"tune runs on one device, not with strategy {type(trainer.strategy).__name__}; give --trainer.devices 1"
            " --trainer.strategy auto"
        )
    return trainer


def scale_batch_size(
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    options: dict[str, Any],
    root: Path,
    mode: str = "power",
    steps_per_trial: int = 3,
    max_batch_size: int = 8192,
    max_trials: int = 25,
) -> int:
    """The largest batch size (``datamodule.batch_size``, from the configured one up) that trains
    ``steps_per_trial`` steps without running out of memory, at most ``max_batch_size``; the data module keeps it."""
    trainer = search_trainer(options, root, steps_per_trial)
    found = Tuner(trainer).scale_batch_size(
        model, datamodule=datamodule, mode=mode, steps_per_trial=steps_per_trial,
        init_val=int(datamodule.batch_size), max_trials=max_trials, max_val=max_batch_size,
    )  # fmt: skip
    if found is None:
        raise ConfigError("tune --batch_size: Lightning's scaler found no batch size; is trainer.fast_dev_run set?")
    datamodule.batch_size = int(found)
    return int(found)


def find_lr(
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    options: dict[str, Any],
    root: Path,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_training: int = 100,
) -> LrSearch:
    """Lightning's learning-rate range test: ``num_training`` steps from ``min_lr`` up to ``max_lr``
    (exponentially), stopped when the smoothed loss exceeds 4 × its best; the model's weights are restored after."""
    trainer = search_trainer(options, root, num_training)
    try:
        finder = Tuner(trainer).lr_find(
            model, datamodule=datamodule, min_lr=min_lr, max_lr=max_lr, num_training=num_training,
            update_attr=False,
        )  # fmt: skip
    except DivergedError as err:
        raise ConfigError(
            f"tune: the training loss became NaN or infinite during the search before it rose 4 × its best; give a"
            f" lower --max_lr than {max_lr:g} ({' '.join(str(err).split())[:120]})"
        ) from err
    if finder is None:
        raise ConfigError("tune: Lightning's learning-rate finder did not run; is trainer.fast_dev_run set?")
    lrs = [float(lr) for lr in finder.results.get("lr", [])]
    losses = [float(loss) for loss in finder.results.get("loss", [])]
    suggestion = finder.suggestion() if len(lrs) > 2 else None
    batch_size = getattr(datamodule, "batch_size", None)
    return LrSearch(lrs, losses, float(suggestion) if suggestion is not None else None, batch_size)


def lr_figure(search: LrSearch, configured: float | None = None, title: str = "") -> np.ndarray:
    """The loss against the learning rate (log scale) as an RGB image (H, W, 3) uint8, the suggestion marked in red
    and the configured learning rate, when given, as a dashed line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    finite = [(lr, loss) for lr, loss in zip(search.lrs, search.losses, strict=True) if math.isfinite(loss)]
    # the first points are left out of the suggestion (and of the y range): the smoothed loss starts biased
    head = [(lr, loss) for lr, loss in finite if lr < search.lrs[min(SKIP_BEGIN, len(search.lrs) - 1)]]
    shown = finite[len(head) :] or finite
    if head:
        axes.plot(*zip(*head, strict=True), color="tab:blue", alpha=0.3, linestyle=":")
    if shown:
        axes.plot(*zip(*shown, strict=True), color="tab:blue", label="smoothed training loss")
        low, high = min(loss for _, loss in shown), max(loss for _, loss in shown)
        axes.set_ylim(low - 0.05 * (high - low or 1), high + 0.05 * (high - low or 1))
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    if configured is not None:
        axes.axvline(configured, color="gray", linestyle="--", label=f"configured {configured:.3g}")
    if search.suggestion is not None:
        loss = dict(finite).get(search.suggestion)
        axes.axvline(search.suggestion, color="tab:red", linewidth=0.8)
        if loss is not None:
            axes.plot([search.suggestion], [loss], "o", color="tab:red", markersize=8)
        axes.plot([], [], "o-", color="tab:red", label=f"suggested {search.suggestion:.3g}")
    batch = f", batch size {search.batch_size}" if search.batch_size else ""
    axes.set_title(f"{title}{' — ' if title else ''}learning-rate range test, {search.steps} steps{batch}", fontsize=10)
    axes.legend(loc="best", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
