"""Fuzzing the tools' command lines: every option of every ``lightning-cnn TOOL`` (the options come from the tool's
own parser, so a new tool or option is fuzzed without a change here), given values of the wrong type, negative,
zero, empty, NaN, inf and huge.

Whatever the value, the tool either accepts it or refuses it with one ``error:`` line (and at most a hint), never a
traceback or the boundary's generic fallback, and a refused value writes nothing. The tool's other arguments point
at files that do not exist, so an accepted value ends at the first file the tool opens: no tool trains or loads
anything here. The suite runs one value per option (rotating the kinds across options); ``LIGHTNING_CNN_FUZZ=all``
runs every case.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

import pytest

from lightning_cnn.tools import TOOLS
from lightning_cnn.tools.options import ToolParser

VALUES = ("abc", "-1", "0", "", "nan", "inf", "1000000000000")
FALLBACK = "set LIGHTNING_CNN_DEBUG=1"
# what a tool needs besides its parser's required arguments before it looks at the others (a seed list, a space)
NEEDS = {"repeat": ["--seeds", "1"], "search": ["--space", "missing-space.yaml"]}


class Captured(Exception):
    def __init__(self, parser: ToolParser) -> None:
        self.parser = parser


def tool_parser(tool: str) -> ToolParser:
    """The parser ``lightning-cnn TOOL`` builds, caught when the tool first parses."""

    def capture(self: ToolParser, *args: object, **kwargs: object) -> None:
        raise Captured(self)

    original = ToolParser.parse_known_args
    ToolParser.parse_known_args = capture  # type: ignore[method-assign]
    try:
        importlib.import_module(TOOLS[tool][0]).main([])
    except Captured as caught:
        return caught.parser
    finally:
        ToolParser.parse_known_args = original  # type: ignore[method-assign]
    raise AssertionError(f"{tool} never parsed its command line with a ToolParser")


def takes_value(action: argparse.Action) -> bool:
    return bool(action.option_strings) and action.nargs != 0 and not isinstance(action, argparse._HelpAction)


def base_args(tool: str, parser: ToolParser, skip: argparse.Action) -> list[str]:
    """The tool's required arguments (every one a missing file), those it needs to go on, and for a tool that passes
    fit options on, a missing ``--config``: whatever the fuzzed option, nothing trains."""
    args: list[str] = []
    for action in parser._actions:
        if action is skip:
            continue
        if not action.option_strings and action.nargs != argparse.SUPPRESS:
            args.append("missing-run")
        elif action.required:
            args += [action.option_strings[0], "missing-file"]
    options = {option for action in parser._actions for option in action.option_strings}
    args += [arg for arg in NEEDS.get(tool, []) if skip.option_strings[0] not in NEEDS.get(tool, [])]
    if "--config" not in options:
        args += ["--config", "missing-config.yaml"]
    return args


def cases() -> list[tuple[str, str, str]]:
    everything = os.environ.get("LIGHTNING_CNN_FUZZ") == "all"
    found, turn = [], 0
    for tool in sorted(TOOLS):
        for action in tool_parser(tool)._actions:
            if not takes_value(action):
                continue
            values = VALUES if everything else (VALUES[turn % len(VALUES)],)
            turn += 1
            found += [(tool, action.option_strings[0], value) for value in values]
    return found


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("tool, option, value", cases())
def test_every_tool_option_with_any_value_is_accepted_or_one_clear_line(run_cli, tmp_path, monkeypatch, tool, option,
                                                                        value):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIGHTNING_CNN_DATA", str(tmp_path / "no-data"))
    parser = tool_parser(tool)
    action = next(a for a in parser._actions if option in a.option_strings)
    before = snapshot(tmp_path)
    code, err = run_cli(tool, *base_args(tool, parser, action), option, value)
    assert "Traceback (most recent call last)" not in err and FALLBACK not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 0 or len(errors) == 1, err
    assert code != 0 or not errors, err
    if code != 0:
        assert snapshot(tmp_path) == before, f"{tool} {option} {value!r} wrote files it was refused"


def test_every_tool_is_fuzzed():
    without_values = {"recipes", "models", "runs"}  # flags and positional arguments only
    assert {tool for tool, _, _ in cases()} == set(TOOLS) - without_values
