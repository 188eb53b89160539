"""Errors a user can act on: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

import os
from collections.abc import Sequence


class LightningCnnError(Exception):
    """Base class for problems in the user's input (config, files, data), not bugs in our code."""

    exit_code = 1  # what the command line exits with: 1 for a problem with files, data or the machine


def exit_code(err: BaseException) -> int:
    """The exit status for ``err``: 2 for a configuration mistake wherever it is found (the parser, pre-flight, a
    constructor, a tool's checks), as for a usage error; 1 for anything else."""
    return int(getattr(err, "exit_code", 1))


class DataNotFoundError(LightningCnnError):
    """The dataset files are missing and could not be downloaded."""


class CorruptDataError(LightningCnnError):
    """A dataset file exists but cannot be parsed (truncated, altered, wrong format)."""


class ConfigError(LightningCnnError):
    """A configuration value is invalid in a way the argument parser cannot see."""

    exit_code = 2  # a usage error, as the parser's own


class CorruptCheckpointError(ConfigError):
    """A checkpoint's bytes are not those its run wrote: its SHA-256 differs from the one recorded beside it."""

    exit_code = 1  # a damaged file, not a mistake in the command


class UntrustedCheckpointError(ConfigError):
    """A checkpoint holds objects whose unpickling could run code, and the user did not say they trust it."""


class MissingExtraError(ConfigError):
    """An optional dependency is not installed; the message gives the pip command for its extra."""

    exit_code = 1  # the installation lacks a package; the command itself is right


# Each optional package and the extra of lightning-cnn (pyproject.toml) that installs it.
EXTRA_OF = {
    "optuna": "search",
    "onnx": "export",
    "onnxscript": "export",
    "onnxruntime": "export",
    "mlflow": "loggers",
    "wandb": "loggers",
    "rich": "progress",
    "timm": "timm",
}


def installed(package: str) -> bool:
    """Whether ``package`` can be imported (a module set to None in ``sys.modules`` cannot)."""
    import importlib.util

    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def require(packages: str | Sequence[str], what: str) -> None:
    """``what`` (a tool, an option) fails in one line with the pip command of its extra when one of its optional
    ``packages`` is not installed."""
    missing = [p for p in ([packages] if isinstance(packages, str) else packages) if not installed(p)]
    if missing:
        raise MissingExtraError(
            f"{what} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed:"
            f" pip install 'lightning-cnn[{EXTRA_OF[missing[0]]}]'"
        )


class RunInUseError(LightningCnnError):
    """Another process holds the run folder a command would write to (a resume, a second resume)."""


class DivergedError(LightningCnnError):
    """The training loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


def check_file(path: str | os.PathLike, what: str, hint: str = "") -> None:
    """One line when ``path``, a ``what`` file the user named, is missing (with ``hint``) or is a folder."""
    if os.path.isdir(path):
        raise ConfigError(f"{what} {path} is a folder; give a file")
    if not os.path.isfile(path):
        raise ConfigError(f"{what} not found: {path}{hint}")


def exception_chain(err: BaseException) -> list[BaseException]:
    """``err`` and the errors behind it (each one's cause, else its context), outermost first and each once, so that
    the error a constructor or a database raised is found inside the wrappers of jsonargparse, Lightning or Optuna."""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and not any(current is seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def weights_do_not_fit(detail: str, count: int | None = None) -> ConfigError:
    """The error for a checkpoint whose weights do not fit the configured model: ``detail`` is the first mismatch
    (a key or a shape), ``count`` how many there are when known."""
    in_all = f"; {count} in all" if count is not None else ""
    return ConfigError(
        f"ckpt_path: the checkpoint's weights do not fit this model ({detail}{in_all}); was it trained with other"
        " model options or on another dataset? Use the run's own config.yaml with --config"
    )


def user_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind ``err``, if any: jsonargparse and Lightning wrap errors raised in constructors."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    for seen in exception_chain(err):
        if isinstance(seen, (LightningCnnError, MisconfigurationException)):
            return seen
        if isinstance(seen, ModuleNotFoundError) and "Requirement" in str(seen):  # e.g. trainer.accelerator tpu
            return seen
        if isinstance(seen, RuntimeError) and "Error(s) in loading state_dict" in str(seen):
            first = next((line.strip() for line in str(seen).splitlines()[1:] if line.strip()), "")
            return weights_do_not_fit(first[:200])
    return None
