"""Reading the YAML files a user writes (configs, search spaces): UTF-8 text, valid YAML, no key given twice.

PyYAML keeps the last of two equal keys without a word, so a value a user edited may silently not be the one used;
here that is an error naming the key, the file and both lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lightning_cnn.errors import ConfigError


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
