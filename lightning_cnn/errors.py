"""Errors a user can act on, and their wording: the CLI prints their message as one line and exits non-zero, and a
parser error is condensed to one line that says what was typed wrong, where, and what is allowed instead."""

from __future__ import annotations

import importlib
import os
import re
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
    "scipy": "svhn",
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


# Parser errors: jsonargparse reports a bad value inside a class as nested union-type errors spanning many lines;
# summarize_parser_error pulls out the key, the value and the expected type.

_KEY = re.compile(r'Parser key "([^"]+)"')
_BAD_CLASS = re.compile(
    r"Expected a path but (\S+) either not accessible|Problem with given class_path '([^']+)': "
    r"(?:module '[^']+' has no attribute|No module named)|Expected a dot import path string: (\S+)"
)
_AMBIGUOUS = re.compile(
    r"Multiple subclasses with name (\w+)\. Give the full class path to avoid ambiguity: ([\w., ]+?)\.(?: -|$)"
)
_PRIMITIVE = re.compile(r"<class '(?:int|float|str|bool)'>")
_EXAMPLES = {
    "model": "my_package.MyNet",
    "data": "my_package.MyDataModule",
    "optimizer": "torch.optim.AdamW",
    "lr_scheduler": "torch.optim.lr_scheduler.StepLR",
}
_EXPECTED = re.compile(r"Expected an? (.+?)(?:\. Got value:| Given value| - |$)", re.MULTILINE)
_VALUE = re.compile(r"(?:Got value|Given value): (.+?)(?:\. Got value| - |$)", re.MULTILINE)


def _type_name(text: str) -> str:
    """``<class 'int'>`` → ``int``; ``typing.Literal['a', 'b']`` → ``one of a, b``."""
    literal = re.match(r"typing\.Literal\[(.*)\]", text)
    if literal:
        return "one of " + ", ".join(v.strip().strip("'\"") for v in literal.group(1).split(","))
    return re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text)


def _subtypes(text: str) -> list[str] | None:
    """The items of the first ``Subtypes: [...]`` list in ``text``, split at top-level commas."""
    start = text.find("Subtypes: [")
    if start < 0:
        return None
    items, depth, current = [], 0, ""
    for char in text[start + len("Subtypes: [") :]:
        if char == "]" and depth == 0:
            break
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [*items, current.strip()]


def summarize_parser_error(message: str, choices: dict[str, list[str]] | None = None) -> str:
    """Condense a jsonargparse error into ``key: problem``; ``choices`` maps ``model``/``data`` to names."""
    flat = " ".join(message.split())
    keys = _KEY.findall(flat)
    if not keys:
        return flat
    key = ".".join(keys)
    ambiguous = _AMBIGUOUS.search(flat)
    if ambiguous:
        paths = " or ".join(p.strip() for p in ambiguous.group(2).split(","))
        return f"{key}: '{ambiguous.group(1)}' is ambiguous; give the full class path: {paths}"
    unknown = re.search(r"Problem with given class_path '([\w.]+)': Option '([^']+)' is not accepted", flat)
    given = re.search(r"Option '([^']+)' is not accepted\. Got value: Namespace\(class_path='([\w.]+)'", flat)
    if unknown or given:  # an option of the model, or of a class given to it (optimizer, scheduler)
        path, option = unknown.groups() if unknown else given.groups()[::-1]
        cls = path.rsplit(".", 1)[-1]
        return f"{key}: {cls} has no option '{option}' (list its options with --{key}.help {path})"
    required = re.search(r"the following arguments are required: ([\w, ]+?)(?: -|$| Given)", flat)
    if required:  # a class given without an argument it needs, e.g. a StepLR without step_size
        given = re.search(r"class_path='([\w.]+)'", flat[required.end() :])
        cls = given.group(1).rsplit(".", 1)[-1] if given else "the class"
        names = [n.strip() for n in required.group(1).split(",")]
        options = " ".join(f"--{key}.{name} VALUE" for name in names)
        return f"{key}: {cls} needs {', '.join(names)}; give {options} (or set it in the config)"
    tail = flat[flat.rfind('Parser key "') :]
    tail = tail[tail.find(":") + 1 :]
    bad_class = _BAD_CLASS.search(tail if len(keys) > 1 else flat)
    subtypes = _subtypes(tail)
    if bad_class and not (subtypes and _PRIMITIVE.search(" ".join(subtypes))):  # not a number that failed as a path
        name = next(group for group in bad_class.groups() if group)
        broken = _import_problem(name)
        if broken:  # a full class path whose module is missing or fails to import: say that, not "unknown"
            return f"{key}: cannot import {name}: {broken}"
        known = (choices or {}).get(key)
        hint = f"choose one of {', '.join(known)}, or give" if known else "give"
        return f"{key}: unknown class '{name}'; {hint} a full class path such as {_EXAMPLES.get(keys[-1], 'pkg.Class')}"
    expected = _EXPECTED.search(tail)
    if subtypes:
        wanted = " or ".join(_type_name(t) for t in subtypes).replace("NoneType", "null")
    elif expected:
        wanted = _type_name(expected.group(1))
    else:
        return f"{key}: {tail.strip()}"
    value = _VALUE.search(tail)
    got = f", got {value.group(1).strip()!r}" if value else ""
    if value and value.group(1).startswith("NestedArg("):
        got = ""
    return f"{key}: expected {wanted}{got}"


def _import_problem(class_path: str) -> str | None:
    """Why the module of a dotted ``class_path`` cannot be imported (with what to do), or None when it can or when
    ``class_path`` is a short name."""
    if "." not in class_path:
        return None
    module = class_path.rsplit(".", 1)[0]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        hint = "run from the folder that holds it, add that folder to PYTHONPATH, or pip install its package"
        return f"{err}; {hint}" if err.name == module.split(".")[0] else f"{err} (imported by {module})"
    except Exception as err:  # the module exists and fails: its own error, first line
        first = (str(err).strip().splitlines() or [""])[0]
        return f"importing {module} raised {type(err).__name__}: {first}"
    return None
