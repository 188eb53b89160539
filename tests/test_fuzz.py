"""Fuzzing the ``fit`` command line: every leaf option of the trainer, every registered model, data module and
augmentation, every optimizer, schedule and callback fragment under configs/, the checkpoint and early stopping,
each given values of the wrong type, negative, zero, empty, NaN, inf, huge and (for paths) missing.

Whatever the value, ``fit`` either accepts it or refuses it with one ``error:`` line that a user can act on
(never the generic "set LIGHTNING_CNN_DEBUG=1" fallback, never a traceback), and a refused value writes nothing.
The options come from the parser itself, so a new option, model or config fragment is fuzzed without a change here.

Each case runs what ``fit`` does before training (parse, pre-flight, build the model, data module and trainer)
on one parser built once; a sample of the accepted values also trains for real with ``fast_dev_run``. The suite
runs one value per option (rotating the kinds across options); ``LIGHTNING_CNN_FUZZ=all`` runs every case.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonargparse import Namespace

from lightning_cnn.__main__ import describe
from lightning_cnn.cli import CNNLightningCLI, cli_main
from lightning_cnn.data import DATAMODULES
from lightning_cnn.data.augment import AUGMENTATIONS
from lightning_cnn.models import MODELS
from tests.helpers.runs import QUICK

CONFIGS = Path(__file__).parent.parent / "configs"
FRAGMENTS = ("optim", "schedule", "callbacks")  # config fragments whose options join the walk
VALUES = ("abc", "-1", "0", "", "nan", "inf", "1000000000000")
PATH_OPTION = re.compile(r"(^|[._])(dir|dirpath|root|path|file|data_dir|cache_dir|default_root_dir)$")
FALLBACK = "set LIGHTNING_CNN_DEBUG=1"  # the boundary's line for an error nobody turned into a message
FULL_RUNS = 3  # accepted cases that also train (fast_dev_run) in the default suite


def required_data_values(image_root: Path, work: Path) -> dict[str, str]:
    """A value for each argument a data module requires: the image folder, and a multi-label CSV of its files
    (written into ``work``; each image's class folder and its parity as labels)."""
    files = sorted(p.relative_to(image_root) for p in image_root.rglob("*") if p.is_file())
    rows = [f"{path},{path.parent.name} {'even' if i % 2 else 'odd'}" for i, path in enumerate(files)]
    (work / "labels.csv").write_text("file,labels\n" + "\n".join(rows) + "\n")
    return {"root": str(image_root), "train_csv": str(work / "labels.csv")}


def option_bases(required: dict[str, str]) -> list[list[str]]:
    """Command lines whose options together are every option: the defaults, each model, data module (with the
    ``required`` values of the arguments it cannot do without), config fragment and augmentation."""
    bases: list[list[str]] = [[]]
    bases += [["--model", name] for name in MODELS]
    for name, cls in DATAMODULES.items():
        needed = [p.name for p in inspect.signature(cls).parameters.values() if p.default is inspect.Parameter.empty]
        assert set(needed) <= set(required), f"{name} requires {needed}: give the fuzz test a value for each"
        bases.append(["--data", name, *(arg for key in needed for arg in (f"--data.{key}", required[key]))])
    bases += [["--config", str(path)] for kind in FRAGMENTS for path in sorted((CONFIGS / kind).glob("*.yaml"))]
    bases += [[f"--data.augment+={name}"] for name in AUGMENTATIONS]
    return bases


def leaf_options(value: Any, prefix: str = "", owner: str = "") -> Iterator[tuple[str, str]]:
    """(option, class that owns it) of every leaf of a parsed config, as typed on the command line: ``init_args``
    left out, the last entry of a list of classes addressed by the list's own key (``--data.augment.padding``)."""
    if isinstance(value, Namespace):
        owner = value.get("class_path", owner) if "class_path" in value else owner
        for key, item in vars(value).items():
            if key == "class_path":
                continue
            yield from leaf_options(item, prefix if key == "init_args" else f"{prefix}.{key}".lstrip("."), owner)
    elif isinstance(value, list) and value and all(isinstance(item, Namespace) for item in value):
        yield from leaf_options(value[-1], prefix, owner)
    elif prefix not in ("config", "subcommand"):
        yield prefix, owner


def fuzz_cases(cli: CNNLightningCLI, required: dict[str, str], missing: Path, per_class: bool) -> list[list[str]]:
    """Every (base, option, value) case, as extra command-line arguments. An option shared by several bases (the
    trainer's, the base model's) is fuzzed once, with the first base that has it; with ``per_class`` once for each
    class that has it (``lr`` of every optimizer, ``dropout`` of every model)."""
    cases, seen = [], set()
    for base in option_bases(required):
        code, err = check_only(cli, base)
        assert code == 0, f"{base}: {err}"
        for option, owner in leaf_options(cli.config):
            key = (option, owner) if per_class else option
            if key in seen:
                continue
            seen.add(key)
            values = [*VALUES, str(missing)] if PATH_OPTION.search(option) else VALUES
            cases += [[*base, f"--{option}", value] for value in values]
    return cases


def one_value_per_option(cases: list[list[str]]) -> list[list[str]]:
    """One case per option, the value kind rotating from one option to the next, so every kind is tried."""
    by_option: dict[str, list[list[str]]] = {}
    for case in cases:
        by_option.setdefault(" ".join(case[:-1]), []).append(case)
    return [group[i % len(group)] for i, group in enumerate(by_option.values())]


def check_only(cli: CNNLightningCLI, args: list[str]) -> tuple[int, str]:
    """What ``fit ARGS`` does before training, on ``cli``'s parser, behind the same boundary as ``main``:
    (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.parse_arguments(cli.parser, args)
            cli.before_instantiate_classes()
            cli.instantiate_classes()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except Exception as exc:  # noqa: BLE001 - main's boundary, as the CLI has it
            err.write(f"error: {describe(exc)}\n")
            code = 1
    return code, err.getvalue()


def problem(code: int, err: str) -> str | None:
    """What is wrong with a run's outcome, if anything."""
    if "Traceback" in err:
        return "traceback"
    if code == 0:
        return None
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    if len(lines) != 1:
        return f"{len(lines)} error lines"
    if FALLBACK in lines[0]:
        return "an error nobody explained"
    return None


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_every_option_with_any_value_is_accepted_or_one_clear_line(
    mnist_dir, image_folder_dir, tmp_path, monkeypatch, run_cli
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # relative paths given as values land here, where the test sees them
    common = ["--data.data_dir", str(mnist_dir), "--trainer.default_root_dir", str(work / "runs"), *QUICK]
    cli = cli_main(common, run=False)
    everything = os.environ.get("LIGHTNING_CNN_FUZZ") == "all"
    required = required_data_values(image_folder_dir / "folders" / "train", tmp_path)
    cases = fuzz_cases(cli, required, tmp_path / "missing" / "folder", everything)
    fuzzed = {case[-2] for case in cases}
    for prefix, registry in (("model", MODELS), ("data", DATAMODULES), ("data.augment", AUGMENTATIONS)):
        for cls in registry.values():  # every option of every registered class is walked
            named = [p.name for p in inspect.signature(cls).parameters.values() if p.kind != p.VAR_KEYWORD]
            assert {f"--{prefix}.{name}" for name in named} <= fuzzed, cls
    options = list(dict.fromkeys(" ".join(case[:-1]) for case in cases))
    chosen = cases if everything else one_value_per_option(cases)

    failures, accepted = [], []
    for case in chosen:
        before = snapshot(tmp_path)
        code, err = check_only(cli, [*common, *case])
        wrong = problem(code, err)
        if code != 0 and snapshot(tmp_path) != before:
            wrong = "wrote files although it failed"
        if wrong:
            failures.append(f"{' '.join(case)} -> exit {code}, {wrong}: {err.strip()[-300:]}")
        elif code == 0:
            accepted.append(case)

    # accepted values must also train: a sample (every case with LIGHTNING_CNN_FUZZ=all) runs a fast_dev_run
    step = 1 if everything else max(1, len(accepted) // FULL_RUNS)
    for case in accepted[::step][:FULL_RUNS]:
        before = snapshot(tmp_path)
        code, err = run_cli("fit", *common, *case, "--trainer.fast_dev_run", "true")
        wrong = problem(code, err)
        if code != 0 and snapshot(tmp_path) != before:
            wrong = "wrote files although it failed"
        if wrong:
            failures.append(f"fast_dev_run {' '.join(case)} -> exit {code}, {wrong}: {err.strip()[-300:]}")
    print(f"fuzz: {len(cases)} cases over {len(options)} options; ran {len(chosen)}, {len(accepted)} accepted")
    assert not failures, f"{len(failures)} of {len(chosen)} cases:\n" + "\n".join(failures)
