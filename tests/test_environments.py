"""A value means the same whatever else is installed or imported: typing's cache of unions must not decide whether
``--trainer.limit_train_batches 10`` is ten batches."""

from __future__ import annotations

import typing

import pytest
from jsonargparse import ArgumentParser

from lightning_cnn.cli import cli_main
from lightning_cnn.preflight import int_or_float_options
from tests.helpers.runs import QUICK

# what typing's cache can hand out for Optional[Union[int, float]] when Union[float, int] was created first
FLOAT_FIRST = type(typing.Union[int, str])(typing.Union, (float, int, type(None)))  # noqa: UP007


def test_the_trainer_options_typed_int_or_float_are_found():
    found = int_or_float_options()
    assert {"limit_train_batches", "limit_val_batches", "overfit_batches", "val_check_interval"} <= set(found)


@pytest.mark.parametrize("typehint", [FLOAT_FIRST, float | int | None, dict[str, FLOAT_FIRST]])
def test_a_union_that_lists_float_first_still_parses_an_integer_as_int(typehint):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--value", type=typehint)
    in_dict = typing.get_origin(typehint) is dict

    def parsed(text: str) -> object:
        value = parser.parse_args(["--value", f'{{"a": {text}}}' if in_dict else text]).value
        return value["a"] if in_dict else value

    assert parsed("10") == 10 and type(parsed("10")) is int
    assert parsed("0.5") == 0.5


@pytest.mark.parametrize("option", int_or_float_options())
@pytest.mark.parametrize("where", ["command line", "yaml"])
def test_an_integral_float_of_each_int_or_float_trainer_option_is_the_count_it_names(tmp_path, option, where):
    args = [*QUICK, "--trainer.default_root_dir", str(tmp_path)]
    if where == "yaml":
        config = tmp_path / "trainer.yaml"
        config.write_text(f"trainer:\n  {option}: 2.0\n")  # YAML reads 2.0 as a float whatever the type hint
        args += ["--config", str(config)]
    else:
        args += [f"--trainer.{option}", "2.0"]
    cli = cli_main(args, run=False)
    value = cli.config.trainer[option]
    assert value == 2 and type(value) is int
    assert getattr(cli.trainer, option, 2) in (2, 2.0)  # the Trainer built with it


def test_one_batch_is_one_batch_and_one_point_zero_the_whole_epoch(tmp_path):
    root = ["--trainer.default_root_dir", str(tmp_path)]
    one = cli_main([*QUICK, *root, "--trainer.limit_train_batches", "1"], run=False)
    assert type(one.config.trainer.limit_train_batches) is int
    whole = cli_main([*QUICK, *root, "--trainer.limit_train_batches", "1.0"], run=False)
    assert type(whole.config.trainer.limit_train_batches) is float


def test_the_declared_floors_are_the_tested_ones():
    """pyproject.toml's lower bound of each core dependency is the version make test-floors installs."""
    import re
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[1]
    pins = dict(
        line.split("==")
        for line in (root / "constraints" / "floors.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {}
    for requirement in declared:
        name = re.match(r"[\w-]+", requirement)[0]
        low = re.search(r">=([\w.]+)", requirement)
        floors[name] = low[1] if low else None
    assert floors == pins, "pyproject.toml's floors and constraints/floors.txt differ: test the floor you declare"
