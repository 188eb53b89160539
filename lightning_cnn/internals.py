"""Every private name of a dependency the project relies on, in one place.

Lightning, torch, TensorBoard, jsonargparse and Optuna may change private names in any release. Importing and
calling them only through this module keeps each use visible, and ``tests/test_internals.py`` checks that every one
still exists, so an upgrade that removes one fails a test that names it instead of a run deep inside training.
``tests/test_layout.py`` fails on a dependency's private name used anywhere else in the package: a subclass of ours
may only override, call or read on itself the members ``OVERRIDDEN`` lists; everything else goes through a helper or
a constant here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict, _sanitize_params
from lightning.fabric.utilities.types import _PATH as PathLike
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.nn.modules.batchnorm import _BatchNorm as BatchNorm
from torch.nn.modules.batchnorm import _NormBase as NormBase
from torch.optim.lr_scheduler import LRScheduler, _enable_get_lr_call

if TYPE_CHECKING:
    from lightning.pytorch.cli import LightningCLI

__all__ = [
    "CLASS_PATH_KEY",
    "INSTANTIATOR_KEY",
    "OVERRIDDEN",
    "BatchNorm",
    "NormBase",
    "PathLike",
    "UnrepeatedDistributedSampler",
    "class_groups",
    "fail_trial",
    "flat_hparams",
    "int_before_float",
    "flat_params",
    "saved_class_path",
    "scheduled_lrs",
    "set_last_lrs",
    "subcommand_parsers",
    "tensorboard_file_writer",
]

# Private methods and attributes of dependency classes that our subclasses override, call or read on themselves
# (cli.CNNLightningCLI, training.callbacks.RunCheckpoint, the training.loggers *RunLogger and _SharedFolderWriter,
# models.base.ImageClassifier, schedulers.ResumableOneCycleLR).
OVERRIDDEN: dict[str, tuple[str, ...]] = {
    "lightning.pytorch.cli.LightningCLI": (
        "_parse_ckpt_path",
        "_parser",
        "_instantiate_trainer",
        "_get",
        "_run_subcommand",  # overridden: a failed command's run folder is removed or said to be kept
    ),
    "lightning.pytorch.callbacks.ModelCheckpoint": (
        "_last_global_step_saved",  # an instance attribute
        "_save_last_checkpoint",
        "_monitor_candidates",
        "_should_skip_saving_checkpoint",
        "_should_save_on_train_epoch_end",
        # instance attributes: the step, epoch and time triggers it was built with, which RunCheckpoint reads
        "_every_n_train_steps",
        "_every_n_epochs",
        "_train_time_interval",
    ),
    "lightning.pytorch.loggers.TensorBoardLogger": ("_get_next_version",),
    "lightning.pytorch.loggers.CSVLogger": ("_experiment",),  # an instance attribute: None until the first write
    # the check of the folder it writes into, which warns and deletes an old metrics.csv
    "lightning.pytorch.loggers.csv_logs.ExperimentWriter": ("_check_log_dir_exists",),
    "lightning.pytorch.loggers.MLFlowLogger": ("_initialized",),  # an instance attribute: whether its run is open
    "lightning.pytorch.loggers.WandbLogger": ("_experiment",),  # an instance attribute: None until the run starts
    "lightning.pytorch.LightningModule": ("_trainer",),  # an instance attribute: None outside a Trainer
    # an instance attribute: the schedule's phases, whose end steps a resumed run of another length refits
    "torch.optim.lr_scheduler.OneCycleLR": ("_schedule_phases",),
}

# The keys Lightning's CLI adds to the hyper-parameters of the model and data module it builds, and so to every
# checkpoint of a CLI run: the class it built ("lightning_cnn.models.LeNet5") and the function that rebuilds it.
CLASS_PATH_KEY = "_class_path"
INSTANTIATOR_KEY = "_instantiator"


def saved_class_path(hparams: Mapping[str, Any]) -> str | None:
    """The class path Lightning's CLI saved among a model's or data module's hyper-parameters; None for one built
    without the CLI (or saved without its class path)."""
    return hparams.get(CLASS_PATH_KEY)


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


def set_last_lrs(scheduler: LRScheduler, lrs: Sequence[float]) -> None:
    """Make ``lrs`` what ``scheduler.get_last_lr()`` returns, as its ``step`` does: a resumed schedule that sets its
    optimizer's rates itself keeps that record in step (the learning-rate monitor and the next checkpoint read it)."""
    scheduler._last_lr = [float(lr) for lr in lrs]


def subcommand_parsers(cli: LightningCLI) -> Mapping[str, Any]:
    """The parser of each subcommand (``fit``...) of a LightningCLI, empty before its parser is set up or without
    subcommands: checking the config files given to a subcommand needs that subcommand's own options."""
    return getattr(cli, "_subcommand_parsers", {})


def class_groups(parser: Any) -> list[str]:
    """The option groups of a jsonargparse parser that take a class (``model``, ``data``, ``early_stopping``...),
    whose config sections hold ``class_path`` and ``init_args`` rather than options: jsonargparse marks their actions
    only by a private type hint, in argparse's private list of actions."""
    return [a.dest for a in parser._actions if a.dest in parser.groups and hasattr(a, "_typehint")]


def tensorboard_file_writer(experiment: Any) -> Any:
    """The event-file writer behind a ``SummaryWriter``, to add raw summaries (the HPARAMS session)."""
    return experiment._get_file_writer()


def fail_trial(study: Any, trial: Any) -> None:
    """Mark a RUNNING Optuna trial as FAIL: Optuna's public API can only finish trials the process itself runs."""
    from optuna.trial import TrialState

    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def _int_first(subtypes: tuple[Any, ...]) -> tuple[Any, ...]:
    """``subtypes`` with ``int`` moved to where ``float`` stands when ``float`` comes first, the rest in place."""
    if int in subtypes and float in subtypes and subtypes.index(float) < subtypes.index(int):
        at_float, at_int = subtypes.index(float), subtypes.index(int)
        order = list(subtypes)
        order[at_float], order[at_int] = int, float
        return tuple(order)
    return subtypes


def _int_first_everywhere(typehint: Any) -> Any:
    from jsonargparse import _typehints

    args = getattr(typehint, "__args__", None)
    if not isinstance(args, tuple) or not args or _typehints.get_typehint_origin(typehint) in _typehints.literal_types:
        return typehint
    new_args = tuple(_int_first_everywhere(a) for a in args)
    if _typehints.get_typehint_origin(typehint) == Union:
        new_args = _int_first(new_args)
    if all(new is old for new, old in zip(new_args, args, strict=True)):
        return typehint
    return _typehints.rebuild_typehint_args(typehint, new_args)


_INT_BEFORE_FLOAT = "_lightning_cnn_int_before_float"


def int_before_float() -> None:
    """Make jsonargparse try ``int`` before ``float`` in every union of both, as the union was written.

    ``typing`` caches unions and takes ``Union[int, float]`` and ``Union[float, int]`` as equal, so an annotation
    such as the Trainer's ``Optional[Union[int, float]]`` can come out as ``Union[float, int, None]`` when another
    import created that one first. jsonargparse then parses ``--trainer.limit_train_batches 10`` as ``10.0`` and
    ``1`` as the fraction ``1.0`` (the whole epoch) instead of one batch. Idempotent."""
    from jsonargparse import _typehints

    if getattr(_typehints, _INT_BEFORE_FLOAT, False):
        return
    # every union is ordered for each value it parses; newer releases also sort a type hint once, for the help
    sort_for_value = _typehints.sort_subtypes_for_union

    def sort_subtypes_for_union(subtypes: Any, *args: Any) -> Any:
        return list(_int_first(tuple(sort_for_value(subtypes, *args))))

    _typehints.sort_subtypes_for_union = sort_subtypes_for_union
    sort_typehint = getattr(_typehints, "sort_unions_in_typehint", None)
    if sort_typehint is not None:

        def sort_unions_in_typehint(typehint: Any) -> Any:
            return _int_first_everywhere(sort_typehint(typehint))

        _typehints.sort_unions_in_typehint = sort_unions_in_typehint
    setattr(_typehints, _INT_BEFORE_FLOAT, True)
