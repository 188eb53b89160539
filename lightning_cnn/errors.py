"""Errors a user can act on: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

import os
from collections.abc import Sequence


class LightningCnnError(Exception):
    """Base class for problems in the user's input (config, files, data), not bugs in our code."""


class DataNotFoundError(LightningCnnError):
    """The dataset files are missing and could not be downloaded."""


class CorruptDataError(LightningCnnError):
    """A dataset file exists but cannot be parsed (truncated, altered, wrong format)."""


class ConfigError(LightningCnnError):
    """A configuration value is invalid in a way the argument parser cannot see."""


class CorruptCheckpointError(ConfigError):
    """A checkpoint's bytes are not those its run wrote: its SHA-256 differs from the one recorded beside it."""


class UntrustedCheckpointError(ConfigError):
    """A checkpoint holds objects whose unpickling could run code, and the user did not say they trust it."""


class MissingExtraError(ConfigError):
    """An optional dependency is not installed; the message gives the pip command for its extra."""


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


class DivergedError(LightningCnnError):
    """The training loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


def check_file(path: str | os.PathLike, what: str, hint: str = "") -> None:
    """One line when ``path``, a ``what`` file the user named, is missing (with ``hint``) or is a folder."""
    if os.path.isdir(path):
        raise ConfigError(f"{what} {path} is a folder; give a file")
    if not os.path.isfile(path):
        raise ConfigError(f"{what} not found: {path}{hint}")


def user_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind ``err``, if any: jsonargparse and Lightning wrap errors raised in constructors."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, (LightningCnnError, MisconfigurationException)):
            return seen
        if isinstance(seen, ModuleNotFoundError) and "Requirement" in str(seen):  # e.g. trainer.accelerator tpu
            return seen
        if isinstance(seen, RuntimeError) and "Error(s) in loading state_dict" in str(seen):
            first = next((line.strip() for line in str(seen).splitlines()[1:] if line.strip()), "")
            return ConfigError(
                f"ckpt_path: the checkpoint's weights do not fit this model ({first[:200]}); was it trained with"
                " other model options or on another dataset? Use the run's own config.yaml with --config"
            )
        seen = seen.__cause__ or seen.__context__
    return None
