"""Every private name of a dependency the project relies on, in one place.

Lightning, torch, TensorBoard and Optuna may change private names in any release. Importing and calling them
only through this module keeps each use visible, and ``tests/test_internals.py`` checks that every one still
exists, so an upgrade that removes one fails a test that names it instead of a run deep inside training.
"""

from __future__ import annotations

from typing import Any

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict, _sanitize_params
from lightning.fabric.utilities.types import _PATH as PathLike
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.nn.modules.batchnorm import _BatchNorm as BatchNorm
from torch.nn.modules.batchnorm import _NormBase as NormBase
from torch.optim.lr_scheduler import LRScheduler, _enable_get_lr_call

__all__ = [
    "OVERRIDDEN",
    "BatchNorm",
    "NormBase",
    "PathLike",
    "UnrepeatedDistributedSampler",
    "fail_trial",
    "flat_hparams",
    "flat_params",
    "scheduled_lrs",
    "tensorboard_file_writer",
]

# Private methods and attributes of dependency classes that our subclasses override, call or read
# (cli.CNNLightningCLI, training.callbacks.RunCheckpoint, training.loggers.RunLogger, models.base.ImageClassifier).
OVERRIDDEN: dict[str, tuple[str, ...]] = {
    "lightning.pytorch.cli.LightningCLI": ("_parse_ckpt_path", "_parser", "_instantiate_trainer", "_get"),
    "lightning.pytorch.callbacks.ModelCheckpoint": (
        "_last_global_step_saved",  # an instance attribute
        "_save_last_checkpoint",
        "_monitor_candidates",
        "_should_skip_saving_checkpoint",
        "_should_save_on_train_epoch_end",
    ),
    "lightning.pytorch.loggers.TensorBoardLogger": ("_get_next_version",),
    "lightning.pytorch.LightningModule": ("_trainer",),  # an instance attribute: None outside a Trainer
    "torch.optim.lr_scheduler.LRScheduler": ("_last_lr",),  # written by schedulers._resumed
}


def flat_hparams(hparams: Any) -> dict[str, Any]:
    """Hyper-parameters as one flat ``{"a/b": value}`` mapping of loggable values, as Lightning's loggers write them."""
    return _sanitize_params(flat_params(dict(hparams)))


def flat_params(hparams: Any) -> dict[str, Any]:
    """Hyper-parameters (a mapping or a Namespace) as one flat ``{"a/b": value}`` mapping, values as given: what
    Lightning's MLflow logger turns into params."""
    return _flatten_dict(_convert_params(hparams))


def scheduled_lrs(scheduler: LRScheduler) -> list[float]:
    """The learning rates a scheduler gives at its ``last_epoch``, computed as its ``step`` does (``get_lr`` called
    outside ``step`` warns that ``get_last_lr`` is usually meant)."""
    with _enable_get_lr_call(scheduler):
        return scheduler.get_lr()


def tensorboard_file_writer(experiment: Any) -> Any:
    """The event-file writer behind a ``SummaryWriter``, to add raw summaries (the HPARAMS session)."""
    return experiment._get_file_writer()


def fail_trial(study: Any, trial: Any) -> None:
    """Mark a RUNNING Optuna trial as FAIL: Optuna's public API can only finish trials the process itself runs."""
    from optuna.trial import TrialState

    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
