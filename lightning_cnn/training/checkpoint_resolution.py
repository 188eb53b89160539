"""Which checkpoint a command works with: ``--ckpt_path`` resolved to a file (``last``, ``best``, a run folder, a
file), checked against the configured model before anything is built or written, and the checkpoint
``test_after_fit`` tests.

A checkpoint of a run under the command's root keeps the command in that run's folder: ``fit`` resumes there (the
folder locked first), ``validate``, ``test`` and ``predict`` write their reports there.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, WeightAveraging
from lightning.pytorch.utilities import rank_zero_info

from lightning_cnn import preflight
from lightning_cnn.checkpoints import checkpoint_model, read_checkpoint
from lightning_cnn.config_files import read_yaml
from lightning_cnn.errors import ConfigError, weights_do_not_fit
from lightning_cnn.run_folder import (
    lock_run,
    newest_run,
    resolve_checkpoint,
    run_checkpoint,
    run_of_configs,
    run_version,
    runs_under,
    set_aside_damaged_last,
)

DEFAULT_MODEL = "lightning_cnn.models.LeNet5"  # the model of a command that names none


def resolve_ckpt_path(subcommand: str | None, config: Any, root_given: bool) -> int | None:
    """Resolve ``config.ckpt_path`` in place and return the version of the run folder the command goes on in
    (``None``: a new run). ``last`` or ``best`` name a checkpoint of the run whose saved ``config.yaml`` was given,
    else of the newest run under ``default_root_dir``; a run folder names its ``last.ckpt`` for ``fit`` and for the
    others the file every tool takes. ``root_given``: ``--trainer.default_root_dir`` was on the command line."""
    ckpt_path = config.get("ckpt_path")
    if not ckpt_path:
        if subcommand in ("validate", "test", "predict"):
            raise ConfigError(
                f"{subcommand} needs --ckpt_path: a checkpoint file, a run folder's 'best' or 'last' (with the"
                " run's config.yaml given by --config), since a model that was not trained (even one with"
                " pretrained weights, whose classifier is new) has nothing to evaluate"
            )
        return None
    config.weights_only = not config.get("trust_checkpoint")  # how Lightning loads it: weights-only unless trusted
    runs = runs_under(config.trainer.get("default_root_dir") or ".")
    given_run = run_of_configs(config.get("config") or [])
    if ckpt_path in ("last", "best"):
        # the run whose config.yaml was given, and no other; without one, the newest run under the root
        run_dir = given_run or newest_run(runs)
        if run_dir is None:
            raise ConfigError(
                f"ckpt_path: '{ckpt_path}' found no run with a checkpoint under {runs}; train first, or give the"
                " run's config.yaml with --config, or the path of a checkpoint file"
            )
        config.ckpt_path = str(run_checkpoint(run_dir, ckpt_path))
    elif Path(ckpt_path).is_dir():
        folder = Path(ckpt_path)
        run = folder.parent if folder.name == "checkpoints" else folder
        config.ckpt_path = str(run_checkpoint(run, "last") if subcommand == "fit" else resolve_checkpoint(folder))
    path = Path(config.ckpt_path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path: checkpoint file not found: {config.ckpt_path}")
    check_checkpoint_model(path, (config.get("model") or {}).get("class_path"), config.get("trust_checkpoint"))
    run_dir = path.resolve().parent.parent
    if path.parent.name != "checkpoints" or run_version(run_dir) < 0:
        return None  # a checkpoint file outside a run folder: a new run starts from its weights
    if given_run is not None and given_run.resolve() == run_dir and not root_given:
        # the saved default_root_dir is where the run was trained; a copied or moved run goes on where it is
        config.trainer.default_root_dir = str(run_dir.parent.parent)
    elif run_dir.parent != runs.resolve():
        return None  # a checkpoint of a run under another root: a new run here starts from its weights
    if subcommand == "fit":
        # a resumed run's checkpoint folder holds its earlier checkpoints by design
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        lock_run(run_dir)  # before anything is written: a second process resuming this run stops here
        set_aside_damaged_last(run_dir, path)
        rank_zero_info(f"Resuming {run_dir} from {path.name}")
        note_changed_options(run_dir, config)
    return run_version(run_dir)


def check_checkpoint_model(path: Path, model_class_path: str | None, trust: bool = False) -> None:
    """A checkpoint of one model given with another explicitly chosen one is an error, not a silent switch."""
    saved = checkpoint_model(path, trust)
    if saved and model_class_path and saved != model_class_path:
        if model_class_path != DEFAULT_MODEL:
            raise ConfigError(
                f"ckpt_path: {path} holds a {saved.rsplit('.', 1)[-1]}, not a {model_class_path.rsplit('.', 1)[-1]};"
                f" give --model {saved.rsplit('.', 1)[-1]} (or the run's own config.yaml with --config)"
            )
        rank_zero_info(f"ckpt_path: {path} holds a {saved}; using that model")


def note_changed_options(run_dir: Path, config: Any) -> None:
    """Say which model and data options of a resumed run differ from its ``config.yaml``: its weights were trained
    with the old ones."""
    saved = run_dir / "config.yaml"
    changed = preflight.changed_options(read_yaml(saved) or {}, config) if saved.is_file() else []
    if changed:
        rank_zero_info(
            "Resuming with model and data options other than those its weights were trained with (its config.yaml):"
            f" {'; '.join(changed[:5])}{'; ...' if len(changed) > 5 else ''}"
        )


def check_weights_fit(path: Path, model: torch.nn.Module, trust: bool = False) -> None:
    """A checkpoint whose weights have other names or shapes than ``model``'s fails with one line naming the first."""
    saved = read_checkpoint(path, mmap=True, trust=trust).get("state_dict") or {}
    own = model.state_dict()
    problems = [f"size mismatch for {k}: checkpoint {list(v.shape)}, model {list(own[k].shape)}"
                for k, v in saved.items() if k in own and v.shape != own[k].shape]  # fmt: skip
    problems += [f"missing key {k}" for k in own if k not in saved]
    problems += [f"unexpected key {k}" for k in saved if k not in own]
    if problems:
        raise weights_do_not_fit(problems[0], len(problems))


ANNEALED = 0.01  # a learning rate that ended below this fraction of its start was annealed


def lr_annealed(trainer: L.Trainer) -> bool:
    """True when every optimizer's learning rate ended below ``ANNEALED`` × its initial value (cosine or one-cycle
    to zero, step decays): the last weights are then the schedule's result, and the best-val epoch is noise."""
    groups = [group for optimizer in trainer.optimizers for group in optimizer.param_groups if group.get("initial_lr")]
    return bool(groups) and all(group["lr"] < ANNEALED * group["initial_lr"] for group in groups)


def run_test_after_fit(trainer: L.Trainer, model: L.LightningModule, datamodule: Any, which: str) -> None:
    """Test a checkpoint of the run just trained: ``best`` (best val/acc), ``last``, or ``auto`` (``last`` when the
    learning rate was annealed, else ``best``); without a saved checkpoint, the weights in memory."""
    if which == "auto":
        which = "last" if lr_annealed(trainer) else "best"
    checkpoint = trainer.checkpoint_callback
    path = ""
    if isinstance(checkpoint, ModelCheckpoint):
        path = checkpoint.best_model_path if which == "best" else checkpoint.last_model_path
    rank_zero_info(f"test_after_fit: testing the {which} checkpoint {path or '(the weights in memory)'}")
    # a weight-averaging callback (EMA) that trained this run would load the checkpoint's raw weights over its
    # averaged ones, which the checkpoint holds as its weights and a separate `test` uses: leave it out here
    callbacks = trainer.callbacks
    trainer.callbacks = [cb for cb in callbacks if not isinstance(cb, WeightAveraging)]
    try:
        trainer.test(model, datamodule=datamodule, ckpt_path=path or None)
    finally:
        trainer.callbacks = callbacks
