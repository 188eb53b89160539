"""Pre-flight: whatever can fail from the configuration alone fails before a run folder exists and before data loads.

Lightning checks many settings only once training starts (some after a whole epoch), and torch checks an
optimizer's arguments only when it is built. The checks here run between parsing and ``fit``: on the parsed
config (numbers, seed, trainer settings), then on the built objects (optimizer and scheduler on the model's
parameters, the checkpoint file name, the folders the run will write). Each failure is one ``ConfigError`` naming
the key, the value and what is allowed.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import re
import tempfile
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from jsonargparse import Namespace
from lightning.pytorch.loggers import Logger
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from lightning_cnn.config_files import check_sections, config_paths, read_yaml
from lightning_cnn.errors import ConfigError, exception_chain
from lightning_cnn.internals import class_groups
from lightning_cnn.models.base import METRICS, check_monitor
from lightning_cnn.schedulers import build_scheduler

LINKED = ("input_shape", "num_classes")  # model arguments the CLI takes from the data module
SEED_RANGE = (0, 2**32 - 1)  # numpy's: seed_everything seeds numpy too
# a stand-in for the run's optimizer steps, which are known only once the data is loaded
STAND_IN_STEPS = 10_000
SCHEDULER_STEPS = 3


def config_leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf in a parsed config; ``init_args`` is left out of keys, as on the command
    line (``model.optimizer.lr``)."""
    if isinstance(value, Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = prefix if key == "init_args" else f"{prefix}.{key}" if prefix else str(key)
            yield from config_leaves(item, name)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from config_leaves(item, f"{prefix}[{i}]")
    else:
        yield prefix, value


def changed_options(saved: Mapping[str, Any], config: Namespace) -> list[str]:
    """``key: old → new`` for every model and data option (those a checkpoint's weights were trained with) whose
    value in ``config`` differs from the one in ``saved`` (a run's config.yaml); the linked shape is left out."""
    sections = ("model", "data")
    old = dict(config_leaves({k: saved.get(k) for k in sections}, ""))
    new = dict(config_leaves({k: config.get(k) for k in sections}, ""))
    return [
        f"{key}: {old[key]!r} → {new[key]!r}"
        for key in old
        if key in new and old[key] != new[key] and key.rsplit(".", 1)[-1] not in LINKED
    ]


def check_numbers(config: Namespace) -> None:
    """No setting is NaN or infinite: no option of a model, data module, optimizer, schedule, callback or trainer
    means anything with them, and most fail only after the run folder is written (or train to NaN)."""
    for key, value in config_leaves(config, ""):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: {value} is not allowed; give a finite number")


def check_seed(seed: Any) -> None:
    """``seed_everything`` seeds numpy, which takes 0 to 2**32 - 1."""
    if isinstance(seed, int) and not isinstance(seed, bool) and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ConfigError(f"seed_everything: {seed} is out of range; give an integer from 0 to {SEED_RANGE[1]}")


def _int_at_least(low: int, none_ok: bool = True) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        return (value is None and none_ok) or (isinstance(value, int) and not isinstance(value, bool) and value >= low)

    return ok


def _batches(value: Any) -> bool:
    """A number of batches (int >= 0) or a fraction of them (float in [0, 1])."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return True
    return isinstance(value, float) and 0.0 <= value <= 1.0


def _interval(value: Any) -> bool:
    """Every N training batches (N >= 1), a fraction (0, 1] of an epoch, or a time (left to Lightning)."""
    if isinstance(value, float):
        return 0.0 < value <= 1.0
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 1
    return True


def _non_negative(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0)


# Trainer settings Lightning accepts at construction but fails on (or silently misreads) once training starts,
# with what is allowed; Lightning's own construction-time checks name no key, so the rest are repeated here.
TRAINER_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "num_nodes": (_int_at_least(1, none_ok=False), "an integer of 1 or more"),
    "max_epochs": (_int_at_least(-1), "an integer of 0 or more, or -1 for no limit"),
    "min_epochs": (_int_at_least(0), "an integer of 0 or more"),
    "max_steps": (_int_at_least(-1, none_ok=False), "an integer of 0 or more, or -1 for no limit"),
    "min_steps": (_int_at_least(0), "an integer of 0 or more"),
    "limit_train_batches": (_batches, "a number of batches (0 or more) or a fraction in [0, 1]"),
    "limit_val_batches": (_batches, "a number of batches (0 or more) or a fraction in [0, 1]"),
    "limit_test_batches": (_batches, "a number of batches (0 or more) or a fraction in [0, 1]"),
    "limit_predict_batches": (_batches, "a number of batches (0 or more) or a fraction in [0, 1]"),
    "overfit_batches": (_batches, "a number of batches (0 or more) or a fraction in [0, 1]"),
    "val_check_interval": (_interval, "a number of training batches (1 or more) or a fraction of an epoch in (0, 1]"),
    "check_val_every_n_epoch": (_int_at_least(1), "an integer of 1 or more, or null"),
    "num_sanity_val_steps": (_int_at_least(-1), "an integer of 0 or more, or -1 for the whole validation split"),
    "log_every_n_steps": (_int_at_least(0), "an integer of 1 or more (0: never)"),
    "accumulate_grad_batches": (_int_at_least(1, none_ok=False), "an integer of 1 or more"),
    "gradient_clip_val": (_non_negative, "a number of 0 or more (0 or null: no clipping)"),
    "reload_dataloaders_every_n_epochs": (_int_at_least(0, none_ok=False), "an integer of 0 or more"),
    "fast_dev_run": (lambda v: isinstance(v, bool) or _int_at_least(0)(v), "true, false or a number of batches"),
}


def int_or_float_options() -> list[str]:
    """The Trainer options typed as a union of int and float (a number of batches, or a fraction of them)."""
    from lightning import Trainer

    return [
        name
        for name, parameter in inspect.signature(Trainer).parameters.items()
        if {int, float} <= set(typing.get_args(parameter.annotation))
    ]


def integral_counts(trainer: Namespace | None) -> None:
    """An integral float above 1 (``10.0``) of an int-or-float Trainer option is the count it names, as Lightning
    takes it for the batch limits: it may come from a YAML file or a parser that tried float before int."""
    for key in int_or_float_options() if trainer is not None else []:
        value = trainer.get(key)
        if isinstance(value, float) and value > 1 and value.is_integer():
            trainer[key] = int(value)


def check_trainer(trainer: Namespace | Mapping[str, Any]) -> None:
    """Trainer settings that Lightning validates late, or reports without naming the key."""
    values = vars(trainer) if isinstance(trainer, Namespace) else trainer
    for key, (ok, allowed) in TRAINER_RULES.items():
        if key in values and not ok(values[key]):
            raise ConfigError(f"trainer.{key}: {values[key]!r} is not allowed; give {allowed}")


def check_config(config: Namespace) -> None:
    """Checks on the parsed config of one subcommand, before any class is instantiated."""
    check_numbers(config)
    check_seed(config.get("seed_everything"))
    if config.get("trainer") is not None:
        check_trainer(config.trainer)


# words torch uses in its messages for an argument, where they are not the argument's own name
_ARGUMENT_WORDS = {"learning rate": "lr", "epsilon": "eps", "beta": "betas", "nesterov": "momentum"}


def _named_arguments(message: str, arguments: Mapping[str, Any]) -> list[str]:
    """The configured arguments a torch error message is about, best guess first."""
    text = message.lower()
    found = [name for word, name in _ARGUMENT_WORDS.items() if word in text and name in arguments]
    found += [name for name in arguments if re.search(rf"\b{re.escape(name.lower())}\b", text) and name not in found]
    return found


def _describe_failure(key: str, factory: Any, err: Exception) -> ConfigError:
    arguments = dict(getattr(factory, "keywords", None) or {})
    cls = next((c for c in reversed([getattr(factory, "func", None), *getattr(factory, "args", ())])
                if isinstance(c, type)), None)  # fmt: skip
    name = cls.__name__ if cls is not None else type(factory).__name__
    message = " ".join(str(err).split()) or type(err).__name__
    named = _named_arguments(message, arguments)
    if named:
        given = ", ".join(f"{key}.init_args.{n}={arguments[n]!r}" for n in named)
        return ConfigError(f"{given}: {name} rejects this: {message}")
    return ConfigError(f"{key}: {name} cannot be built with {arguments}: {message}")


def check_optimization(model: Any, max_steps: int | None = None) -> None:
    """Build the model's optimizer on its parameters and the scheduler on that optimizer, as ``fit`` will."""
    optimizer_factory = getattr(model, "_optimizer_factory", None)
    if optimizer_factory is None or not hasattr(model, "parameter_groups"):
        return
    try:
        optimizer = optimizer_factory(model.parameter_groups())
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError) as err:
        raise _describe_failure("model.optimizer", optimizer_factory, err) from err
    scheduler_factory = getattr(model, "_lr_scheduler_factory", None)
    if scheduler_factory is None:
        return
    steps = max_steps if isinstance(max_steps, int) and max_steps > 0 else STAND_IN_STEPS
    try:
        scheduler = build_scheduler(scheduler_factory, optimizer, steps)
        with warnings.catch_warnings():  # stepped without optimizer steps: this optimizer is thrown away
            warnings.simplefilter("ignore")
            for _ in range(min(SCHEDULER_STEPS, steps - 1)):  # some fail only when stepped (StepLR, step_size 0)
                scheduler.step(*([1.0] if isinstance(scheduler, ReduceLROnPlateau) else []))
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, ArithmeticError) as err:
        raise _describe_failure("model.lr_scheduler", scheduler_factory, err) from err


def check_forward(model: Any) -> None:
    """One image of the model's input shape through the model (evaluation mode, no gradients): a setting that only
    fails on data (a resize too large, a network that shrinks the image below 1×1) fails here, not in training."""
    example = getattr(model, "example_input_array", None)
    if not isinstance(model, torch.nn.Module) or not isinstance(example, torch.Tensor):
        return
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example[:1])
    except Exception as err:  # noqa: BLE001 - whatever the network raises, named with the model's options
        arguments = dict(getattr(model, "hparams", {}))
        changed = _changed_arguments(type(model), arguments)
        given = " with " + ", ".join(f"{name}={arguments[name]!r}" for name in changed) if changed else ""
        shape = "×".join(map(str, example.shape[1:]))
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise ConfigError(f"model: {type(model).__name__}{given} cannot classify a {shape} image: {reason}") from err
    finally:
        model.train(was_training)


def check_augmentations(datamodule: Any) -> None:
    """The training augmentations on a stand-in batch of the data's image shape (torch's random state is kept):
    a setting that only fails on images (a crop padding too large) fails here, not in the first training batch."""
    augment, shape = getattr(datamodule, "augment", None), getattr(datamodule, "input_shape", None)
    if not augment or shape is None:
        return
    images = torch.zeros(2, *shape)
    with torch.random.fork_rng(devices=[]):
        for i, augmentation in enumerate(augment):
            try:
                images = augmentation(images)
            except Exception as err:  # noqa: BLE001 - whatever it raises, named with its settings
                reason = " ".join(str(err).split())[:300] or type(err).__name__
                shape_text = "×".join(map(str, shape))
                raise ConfigError(
                    f"data.augment[{i}]: {augmentation!r} fails on {shape_text} images: {reason}"
                ) from err


def check_checkpoint_filename(key: str, callback: Any) -> None:
    """Format the checkpoint file name with stand-in metrics: a bad format spec otherwise fails after an epoch."""
    filename = getattr(callback, "filename", None)
    if not filename or not hasattr(callback, "format_checkpoint_name"):
        return
    metrics = {name: torch.tensor(0.5) for name in METRICS}
    metrics.update(epoch=torch.tensor(1), step=torch.tensor(1))
    try:
        callback.format_checkpoint_name(metrics)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise ConfigError(
            f"{key}.filename: {filename!r} is not a valid file name pattern ({err}); use fields such as"
            " {epoch:03d}, {step} and logged metrics such as {val/acc:.4f}"
        ) from err


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(path.anchor or ".")


def check_writable(key: str, folder: str | os.PathLike) -> None:
    """``folder`` exists as a folder, or can be created, and a file can be written in it; nothing is left behind."""
    path = Path(folder).expanduser().absolute()
    base = _existing_ancestor(path)
    if not base.is_dir():
        what = "is a file" if base == path else f"cannot be created: {base} is a file"
        raise ConfigError(f"{key}: {folder} {what}; give a folder")
    try:
        with tempfile.TemporaryFile(dir=base, prefix=".lightning-cnn-write-check-"):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        target = "is not writable" if base == path else f"cannot be created in {base}"
        raise ConfigError(f"{key}: {folder} {target} ({reason}); choose another folder or fix its permissions") from err


def run_folders(trainer: Any, checkpoint_callbacks: Mapping[str, Any], datamodule: Any) -> dict[str, Path]:
    """Every folder a run writes, by the key that sets it."""
    folders: dict[str, Path] = {"trainer.default_root_dir": Path(trainer.default_root_dir)}
    for logger in getattr(trainer, "loggers", []):
        save_dir = getattr(logger, "save_dir", None)
        if save_dir and Path(save_dir).absolute() != folders["trainer.default_root_dir"].absolute():
            folders.setdefault("trainer.logger.save_dir", Path(save_dir))
    for key, callback in checkpoint_callbacks.items():
        if getattr(callback, "dirpath", None):
            folders[f"{key}.dirpath"] = Path(callback.dirpath)
    written = getattr(datamodule, "written_folders", None)
    if callable(written):
        folders.update(written())
    return folders


def check_unfreeze_in_one_process(model: Any, trainer: Any) -> None:
    """A backbone unfrozen during training (``unfreeze_at_epoch``) needs one process: DDP averages the gradients of
    the parameters that train when it starts, so the unfrozen layers would train apart in each process."""
    processes = getattr(trainer, "world_size", 1)
    if getattr(model, "unfreeze_at_epoch", None) is not None and getattr(model, "frozen", False) and processes > 1:
        raise ConfigError(
            f"model.unfreeze_at_epoch: {model.unfreeze_at_epoch} with {processes} processes: DDP averages only the"
            " gradients of the parameters that train when it starts, so the backbone unfrozen later would train"
            " apart in each process; train with one process (trainer.devices 1), or set unfreeze_at_epoch: null"
        )


def check_objects(model: Any, trainer: Any, datamodule: Any, checkpoint_callbacks: Mapping[str, Any]) -> None:
    """Checks on the instantiated model, trainer, data module and checkpoint callbacks, before anything runs."""
    check_optimization(model, getattr(trainer, "max_steps", None))
    check_unfreeze_in_one_process(model, trainer)
    check_forward(model)
    check_augmentations(datamodule)
    for key, callback in checkpoint_callbacks.items():
        check_checkpoint_filename(key, callback)
    for key, folder in run_folders(trainer, checkpoint_callbacks, datamodule).items():
        check_writable(key, folder)


def check_linked(config: Namespace, model: Any, datamodule: Any) -> None:
    """The data module gives the model its ``num_classes`` and ``input_shape``: a value configured for the model
    that the data contradicts would be replaced without a word, so it is an error."""
    init_args = (config.get("model") or Namespace()).get("init_args") or Namespace()
    for key in LINKED:
        default, from_data = _default(type(model), key), getattr(datamodule, key, None)
        given = init_args.get(key, default)
        if from_data is None or _plain(given) in (_plain(default), _plain(from_data)):
            continue
        raise ConfigError(
            f"model.{key}: {given!r} given, but {type(datamodule).__name__} gives {from_data!r}; the data"
            f" options decide it, so leave model.{key} out (or choose data with {given!r})"
        )


def _default(cls: type, name: str) -> Any:
    """The default of ``cls``'s argument ``name``, also when a subclass passes it on through ``**kwargs``."""
    for klass in cls.__mro__:
        parameter = inspect.signature(klass.__init__).parameters.get(name) if "__init__" in vars(klass) else None
        if parameter is not None:
            return parameter.default
    return inspect.Parameter.empty


def _configured_classes(value: Any, key: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(key, class path, init_args) of every class in a parsed config: the model, data module, optimizer, ..."""
    if isinstance(value, Namespace):
        if isinstance(value.get("class_path"), str):
            yield key, value["class_path"], dict(vars(value.get("init_args") or Namespace()))
        for name, item in vars(value).items():
            if name != "class_path":
                yield from _configured_classes(item, key if name == "init_args" else f"{key}.{name}".lstrip("."))
    elif isinstance(value, list):
        for item in value:
            yield from _configured_classes(item, key)


def _changed_arguments(cls: type, arguments: Mapping[str, Any]) -> list[str]:
    """The arguments given a value other than ``cls``'s default."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return []
    return [
        name for name, value in arguments.items()
        if name in parameters and parameters[name].default is not inspect.Parameter.empty
        and not isinstance(value, Namespace) and _plain(value) != _plain(parameters[name].default)
    ]  # fmt: skip


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def construction_error(config: Namespace, err: BaseException) -> ConfigError | None:
    """One line for a class of the config (model, data module, callback, trainer) that failed to build on a value
    it did not check itself (torch refusing a negative padding, an allocation too large): the key, the class, the
    changed arguments it failed on, and the reason.

    The class and its arguments come from the config and the classes' signatures, not from the traceback: a
    changed argument the message names; else the class that fails again when built with the config's values, and
    of its changed arguments those it fails on alone (or, failing only on several together, those it builds
    without); else a changed value of a data module or a logger (never built again) that the message quotes; else
    the model, which then failed on the shape and classes the data gave it."""
    root = exception_chain(err)[-1]
    reason = " ".join(str(root).split())[:300] or type(root).__name__
    built = _built_classes(config)
    for key, cls, arguments in built:
        named = [name for name in _named_arguments(reason, arguments) if name in _changed_arguments(cls, arguments)]
        if named:
            return _cannot_build(key, cls, arguments, named, reason)
    for key, cls, arguments in built:
        changed = _changed_arguments(cls, arguments)
        if changed and _rebuilt(cls) and _fails_as(root, cls, arguments):
            return _cannot_build(key, cls, arguments, _failing_arguments(root, cls, arguments, changed), reason)
    for key, cls, arguments in built:
        quoted = [] if _rebuilt(cls) else _quoted_arguments(reason, arguments, _changed_arguments(cls, arguments))
        if quoted:
            return _cannot_build(key, cls, arguments, quoted, reason)
    return next((_cannot_build(key, cls, args, [], reason) for key, cls, args in built if key == "model"), None)


def _built_classes(config: Namespace) -> list[tuple[str, type, dict[str, Any]]]:
    """(key, class, plain arguments) of every class the config builds at once, the trainer last; the optimizer and
    scheduler are left out (the model builds them later), and so are arguments that are classes themselves. The
    model gets the shape and classes of a data module that has fixed ones, as the CLI links them."""
    trainer = ("trainer", "lightning.pytorch.Trainer", dict(vars(config.get("trainer") or Namespace())))
    found = []
    for key, class_path, arguments in [*_configured_classes(config), trainer]:
        try:
            cls = pl.Trainer if key == "trainer" else _import_class(class_path)
        except (ImportError, AttributeError, ValueError):
            continue
        if isinstance(cls, type) and not issubclass(cls, (torch.optim.Optimizer, LRScheduler)):
            found.append((key, cls, {k: v for k, v in arguments.items() if not _holds_class(v)}))
    data = next((cls for key, cls, _ in found if key == "data"), None)
    linked = {k: v for k in LINKED if isinstance(v := getattr(data, k, None), (int, tuple))}
    return [(key, cls, arguments | linked if key == "model" else arguments) for key, cls, arguments in found]


def _import_class(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _holds_class(value: Any) -> bool:
    return isinstance(value, Namespace) or (
        isinstance(value, (list, tuple)) and any(isinstance(item, Namespace) for item in value)
    )


def _rebuilt(cls: type) -> bool:
    """Whether a failed construction may be tried again: not for data modules (they read and cache the data) nor
    loggers (they may reach a tracking server)."""
    return not issubclass(cls, (pl.LightningDataModule, Logger))


def _fails_as(root: BaseException, cls: type, arguments: Mapping[str, Any]) -> bool:
    """Whether ``cls`` built with ``arguments`` fails with an error of ``root``'s type."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(**arguments)
    except Exception as err:  # noqa: BLE001 - any error; the one of the failed construction is what counts
        return type(exception_chain(err)[-1]) is type(root)
    return False


def _failing_arguments(root: BaseException, cls: type, arguments: Mapping[str, Any], changed: list[str]) -> list[str]:
    """Of the ``changed`` arguments of a class that fails with all of them, those it fails on alone (the others at
    their defaults); else those without which it builds; else all."""
    if len(changed) == 1:
        return changed

    def only(name: str) -> dict[str, Any]:
        return {k: v for k, v in arguments.items() if k not in changed or k == name}

    alone = [name for name in changed if _fails_as(root, cls, only(name))]
    if alone:
        return alone
    without = [name for name in changed if not _fails_as(root, cls, {k: v for k, v in arguments.items() if k != name})]
    return without or changed


def _quoted_arguments(message: str, arguments: Mapping[str, Any], names: list[str]) -> list[str]:
    """Those of ``names`` whose value (or an item of it) the message quotes: a path, a size; one-character values
    (0, 1, ...) are too common in messages to tell anything."""

    def quoted(value: Any) -> bool:
        items = value if isinstance(value, (list, tuple)) else [value]
        texts = [str(item) for item in items if not isinstance(item, bool) and len(str(item)) > 1]
        return any(re.search(rf"(?<![\w.]){re.escape(text)}(?!\w)", message) for text in texts)

    return [name for name in names if quoted(arguments[name])]


def _cannot_build(key: str, cls: type, arguments: Mapping[str, Any], named: list[str], reason: str) -> ConfigError:
    given = " with " + ", ".join(f"{name}={arguments[name]!r}" for name in named) if named else ""
    from_data = set(named) & set(LINKED) or (key == "model" and not named)
    linked = " (input_shape and num_classes come from the data options)" if from_data else ""
    return ConfigError(f"{key}: {cls.__name__} cannot be built{given}{linked}: {reason}")


def available_devices() -> dict[str, int]:
    """The accelerators Lightning can use on this machine, with their device counts."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    found = {}
    for name in sorted(AcceleratorRegistry.available_accelerators()):
        accelerator = AcceleratorRegistry[name]["accelerator"]
        try:
            if accelerator.is_available():
                found[name] = int(accelerator.auto_device_count())
        except Exception:  # an accelerator whose package is missing is not available
            continue
    return found


def check_accelerator(trainer: Any) -> None:
    """``trainer.accelerator`` and ``trainer.devices`` that this machine does not have fail with one line naming
    the key and what is available (Lightning's own message names neither, or says 'No supported gpu backend')."""
    accelerator = trainer.get("accelerator")
    if not isinstance(accelerator, str) or accelerator == "auto":
        return
    available = available_devices()
    listed = ", ".join(f"{name} ({count} device{'s' * (count > 1)})" for name, count in available.items())
    names = {"gpu": ["cuda", "mps"], "tpu": ["tpu", "xla"]}.get(accelerator, [accelerator])
    chosen = next((name for name in names if name in available), None)
    if chosen is None:
        raise ConfigError(
            f"trainer.accelerator: '{accelerator}' is not available on this machine; available: {listed}."
            " Use --trainer.accelerator auto (or one of those)"
        )
    if chosen == "cpu":  # any number of CPU processes can run
        return
    devices = trainer.get("devices")
    wanted = len(devices) if isinstance(devices, (list, tuple)) else None
    if isinstance(devices, int) or (isinstance(devices, str) and devices.isdigit()):
        wanted = int(devices)
    if wanted is not None and wanted > available[chosen]:
        raise ConfigError(
            f"trainer.devices: {devices} asked for with trainer.accelerator '{accelerator}', but this machine has"
            f" {available[chosen]} {chosen} device{'s' * (available[chosen] > 1)}; available: {listed}"
        )


def check_monitors(callbacks: Mapping[str, Any], num_classes: int | None) -> None:
    """Each callback (``checkpoint``, ``early_stopping``) that watches a metric watches one the model logs, in the
    direction it improves."""
    for key, callback in callbacks.items():
        monitor = getattr(callback, "monitor", None)
        if monitor is not None:
            check_monitor(f"{key}.monitor", monitor, getattr(callback, "mode", None), num_classes)


def check_config_sections(args: Sequence[str], parsers: Mapping[str, Any], parser: Any) -> None:
    """Sections of the ``--config`` files given to the subcommand in ``args`` are mappings, never silently dropped
    (``parsers``: each subcommand's parser; ``parser``: the one of a command line without a subcommand)."""
    subcommand = next((a for a in args if a in parsers), None)
    parser = parsers[subcommand] if subcommand else parser
    for value in config_paths(list(args[args.index(subcommand) + 1 :] if subcommand else args)):
        content = read_yaml(Path(value)) if Path(value).is_file() else None
        if isinstance(content, dict):
            # model, data, early_stopping take a class name; the other sections are groups of options
            check_sections(content, list(parser.groups), class_groups(parser), value)


def check_built(
    config: Any, subcommand: str | None, model: Any, datamodule: Any, trainer: Any, checkpoint: Any
) -> None:
    """The checks on the built objects: the model's linked options against the data's, and, for training (a
    ``fit``, or ``None``: built to be checked, as the tools do before their runs), the optimizer, the schedule, the
    checkpoint file name and the folders the run writes."""
    if datamodule is not None and model is not None:
        check_linked(config, model, datamodule)
    training = subcommand in (None, "fit")
    check_objects(model if training else None, trainer, datamodule, {"checkpoint": checkpoint} if training else {})
