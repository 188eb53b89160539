"""Reading the YAML files a user writes (configs, search spaces): UTF-8 text, valid YAML, no key given twice; and
finding the recipes and fragments shipped inside the package.

PyYAML keeps the last of two equal keys without a word, so a value a user edited may silently not be the one used;
here that is an error naming the key, the file and both lines.

The recipes live in the package (``lightning_cnn/configs``, which a clone also shows as ``configs/``), so a user of
the installed wheel can write ``--config mnist/lenet5.yaml`` from any folder: a relative path that does not exist
here names the packaged file, with or without the ``configs/`` prefix.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from lightning_cnn.errors import ConfigError, check_file
from lightning_cnn.run_folder import run_of_configs

PACKAGED = Path(str(files("lightning_cnn") / "configs"))  # the recipes and fragments shipped with the package
_announced: set[str] = set()


def packaged_config(value: str) -> Path | None:
    """The packaged recipe, fragment or search space that the relative path ``value`` names (``mnist/lenet5.yaml``
    or ``configs/mnist/lenet5.yaml``), or None."""
    parts = Path(value).parts
    parts = parts[1:] if parts[:1] == ("configs",) else parts
    if not parts or Path(value).is_absolute() or ".." in parts:
        return None
    found = PACKAGED.joinpath(*parts)
    return found if found.is_file() else None


def find_config(value: str) -> str:
    """``value`` itself when it exists here; else the packaged file of that name (said once, in one line)."""
    found = None if Path(value).exists() else packaged_config(value)
    if found is None:
        return value
    if value not in _announced:
        _announced.add(value)
        sys.stderr.write(f"{value}: not in this folder; using the packaged recipe {found}\n")
    return str(found)


def packaged_recipes(root: Path = PACKAGED) -> dict[str, dict[str, Any]]:
    """Every recipe under ``root`` (a YAML file naming a model class), by its path relative to ``root``, with its
    content; fragments and search spaces are left out."""
    found = {}
    for path in sorted(root.rglob("*.yaml")):
        content = read_yaml(path)
        model = content.get("model") if isinstance(content, dict) else None
        if isinstance(model, dict) and "class_path" in model:
            found[path.relative_to(root).as_posix()] = content
    return found


def with_packaged_configs(args: Sequence[str]) -> list[str]:
    """``args`` with each ``--config FILE`` that names a packaged file (and no file here) pointing at that file."""
    resolved = [str(a) for a in args]
    for i, arg in enumerate(resolved):
        if arg == "--config" and i + 1 < len(resolved) and ":" not in resolved[i + 1]:
            resolved[i + 1] = find_config(resolved[i + 1])
        elif arg.startswith("--config=") and ":" not in arg:
            resolved[i] = "--config=" + find_config(arg.split("=", 1)[1])
    return resolved


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may repeat
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: PyYAML's own error says so
                continue
            if first != line:
                raise DuplicateKeyError(key, first, line)
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(f"key '{key}' is given twice (lines {first}, {second}); keep one")


def read_yaml(path: Path, what: str = "config file") -> Any:
    """The content of the YAML file ``path``; a file that is not UTF-8 text, not valid YAML or that gives a key
    twice is one ``ConfigError`` naming ``what`` and the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start});"
            " save it as UTF-8 (a YAML file)"
        ) from err
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as err:
        raise ConfigError(f"{what} {path}: {err}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{what} {path}: invalid YAML{where}: {getattr(err, 'problem', None) or err}") from err


def config_paths(args: list[str]) -> list[str]:
    """The files given with ``--config FILE`` or ``--config=FILE`` in ``args`` (inline YAML, holding ``:``, left
    out)."""
    paths = []
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--config" and i + 1 < len(args) else None
        if arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        if value is not None and ":" not in value:
            paths.append(value)
    return paths


def check_sections(content: dict[str, Any], groups: list[str], classes: list[str], path: str) -> None:
    """Every section of options in a config (``trainer:``, ``checkpoint:``...) is a mapping, null, or the path of
    a YAML file of that section (a class name for the ``classes`` sections: model, data...); jsonargparse would drop
    a list or a number without a word."""
    for key in groups:
        value = content.get(key)
        if isinstance(value, str) and key not in classes and not Path(value).is_file():
            raise ConfigError(
                f"config file {path}: {key}: expected a mapping of {key} options, got {value!r} (not a YAML file"
                " either)"
            )
        if value is None or isinstance(value, (dict, str)):
            continue
        kind = {bool: "true/false", int: "a number", float: "a number", list: "a list"}.get(type(value), "a value")
        raise ConfigError(
            f"config file {path}: {key}: expected a mapping of {key} options (or the path of a YAML file of them),"
            f" got {kind}: {value!r}"
        )


def option_given(args: Sequence[str], key: str) -> bool:
    """Whether ``--KEY`` is among the fit options ``args`` (as ``--KEY VALUE`` or ``--KEY=VALUE``)."""
    return any(str(a) == f"--{key}" or str(a).startswith(f"--{key}=") for a in args)


def check_config_files(args: Sequence[str]) -> list[str]:
    """``args`` with packaged recipes found (``--config mnist/lenet5.yaml`` from any folder); fail early, naming the
    file, when a ``--config`` file does not exist, is empty, is not UTF-8 text or valid YAML, gives a key twice, or
    is not a mapping.

    jsonargparse would otherwise try the value as inline YAML and report "unrecognized arguments", or report the
    YAML problem without the file's name.
    """
    args = with_packaged_configs(args)
    for value in config_paths(args):
        path = Path(value)
        check_file(path, "config file", f" (resolved to {path.resolve()})")
        content = read_yaml(path)
        if not isinstance(content, dict):
            kind = "empty" if content is None else f"a {type(content).__name__}, not a mapping of keys to values"
            raise ConfigError(f"config file {value} is {kind}; see 'lightning-cnn recipes' for examples")
    return args


def own_labels(config: Any, given: Sequence[str]) -> None:
    """A new run started from another run's saved ``config.yaml`` (a k-fold fold, a search trial, a re-run) has a
    name and tags of its own: those the saved run had are dropped unless given again; a resume keeps them."""
    saved_run = run_of_configs(config.get("config") or [])
    if saved_run is None or config.get("ckpt_path") or not (saved_run / "config.yaml").is_file():
        return
    saved = read_yaml(saved_run / "config.yaml") or {}
    for key, default in (("run_name", None), ("tags", [])):
        if not option_given(given, key) and config.get(key) == saved.get(key, default):
            config[key] = default


def absolute_data_paths(data: Any, datamodule: Any) -> None:
    """A relative folder given to the data module (``data.root``, ``data.data_dir``...) is saved in the run's
    config as the absolute folder the module resolved it to: the config then re-runs from any folder."""
    init_args = data.get("init_args") if data is not None else None
    resolved = datamodule.resolved_paths() if hasattr(datamodule, "resolved_paths") else {}
    for key, path in resolved.items():
        value = init_args.get(key) if init_args is not None else None
        if isinstance(value, str) and not Path(value).is_absolute():
            init_args[key] = str(path.resolve())
