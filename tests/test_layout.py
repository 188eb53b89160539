"""The package's shape: imports point one way, optional dependencies stay optional, every tool answers --help,
and a user's own model trains by class path without an edit to the package."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lightning_cnn.commands import LIGHTNING_SUBCOMMANDS, TOOLS
from tests.helpers.runs import QUICK

PACKAGE = Path(__file__).resolve().parent.parent / "lightning_cnn"

# Each part of the package and the parts it may import (besides itself and everything those may import).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "registry": set(),
    "internals": set(),
    "messages": set(),
    "tool_options": set(),
    "config_files": {"errors"},
    "checkpoints": {"errors", "internals"},
    "schedulers": {"errors", "internals"},
    "models": {"checkpoints", "schedulers", "registry", "internals"},
    "data": {"checkpoints", "registry", "internals"},
    "training": {"models", "data", "tool_options", "config_files"},
    "preflight": {"models", "schedulers"},
    "recipes": {"config_files", "tool_options"},
    "cli": {"training", "messages", "preflight", "config_files"},
    "inference": {"checkpoints", "models", "data", "tool_options", "config_files"},
    "experiments": {"cli", "tool_options"},
    "commands": {"cli", "experiments", "inference", "training"},
    "__main__": {"commands"},
    "__init__": set(),
}


def reachable(part: str) -> set[str]:
    """``part`` and every part it may import, directly or through the parts it may import."""
    seen, todo = {part}, [part]
    while todo:
        for nxt in ALLOWED[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def module_name(path: Path) -> str:
    return ".".join(("lightning_cnn", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def part_of(module: str) -> str:
    """The part of ``lightning_cnn.a.b``: ``a`` (a subpackage or a top-level module)."""
    return module.split(".")[1] if "." in module else "__init__"


def imports() -> list[tuple[str, str, int]]:
    """(importing module, imported lightning_cnn module, line) for every import in the package, lazy ones too."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lightning_cnn"):
                # `from package import submodule` imports the submodule, not the package's own names
                targets = [f"{node.module}.{a.name}" for a in node.names]
                found += [(name, t if is_module(t) else node.module, node.lineno) for t in targets]
            elif isinstance(node, ast.Import):
                found += [(name, a.name, node.lineno) for a in node.names if a.name.startswith("lightning_cnn")]
    return found


def test_every_module_belongs_to_a_known_part():
    parts = {part_of(module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert parts <= set(ALLOWED), f"add {parts - set(ALLOWED)} to ALLOWED with the parts it may import"


def test_imports_point_one_way():
    wrong = [
        f"{source}:{line} imports {target}"
        for source, target, line in imports()
        if part_of(target) not in reachable(part_of(source))
    ]
    assert not wrong, "imports against the direction:\n" + "\n".join(wrong)


def test_no_import_cycle_between_modules():
    graph: dict[str, set[str]] = {}
    for source, target, _ in imports():
        graph.setdefault(source, set()).add(target)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in list(graph):
        if node not in state:
            visit(node, [node])


def test_the_cli_loads_no_optional_dependency():
    code = "import sys, lightning_cnn.cli, lightning_cnn.commands; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert not loaded & {"optuna", "onnx", "onnxruntime", "onnxscript"}


def test_top_level_help_lists_every_subcommand_and_tool(run_cli, capsys):
    from lightning_cnn.commands import main

    main(["--help"])
    out = capsys.readouterr().out
    for name in [*LIGHTNING_SUBCOMMANDS, *TOOLS]:
        assert f"  {name} " in out


@pytest.mark.parametrize("command", [*LIGHTNING_SUBCOMMANDS, *TOOLS])
def test_every_subcommand_and_tool_answers_help(command, capsys):
    from lightning_cnn.commands import main

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out.lower()


@pytest.mark.parametrize(
    ("package", "extra", "args"),
    [
        ("optuna", "search", ["search", "--help"]),
        ("onnxruntime", "export", ["export", "--help"]),
        ("mlflow", "loggers", ["fit", "--config", "logger/mlflow.yaml"]),
        ("wandb", "loggers", ["fit", "--trainer.logger", "WandbRunLogger"]),
        ("rich", "progress", ["fit", "--progress", "rich"]),
        ("timm", "timm", ["fit", "--model", "TimmClassifier", "--model.model_name", "resnet10t"]),
    ],
)
def test_a_feature_used_without_its_extra_is_one_line_naming_the_pip_command(
    run_cli, monkeypatch, tmp_path, package, extra, args
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(*args, *(["--data.download", "false"] if args[0] == "fit" else []))
    assert code != 0
    assert [line for line in err.splitlines() if line.startswith(("error", "Traceback"))] == [
        next(line for line in err.splitlines() if line.startswith("error:"))
    ]
    assert err.strip().endswith(f"needs {package}, which is not installed: pip install 'lightning-cnn[{extra}]'"), err
    assert not (tmp_path / "lightning_logs").exists()  # refused before a run folder was made


USER_MODEL = '''
    from torch import nn

    from lightning_cnn.models import ImageClassifier


    class TinyNet(ImageClassifier):
        """A user's own model, in a file of their own: subclass ImageClassifier and build self.net."""

        def __init__(self, width: int = 8, **kwargs):
            super().__init__(**kwargs)
            channels = self.input_shape[0]
            self.net = nn.Sequential(
                nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                nn.Linear(width, self.num_classes),
            )
'''


def test_a_model_in_the_users_own_file_trains_by_class_path(run_cli, mnist_dir, tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(textwrap.dedent(USER_MODEL))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = run_cli(
        "fit", "--model", "my_models.TinyNet", "--model.width", 4, "--data.data_dir", mnist_dir,
        "--trainer.fast_dev_run", "true", "--trainer.default_root_dir", tmp_path / "runs", *QUICK,
    )  # fmt: skip
    assert code == 0, err
    sys.modules.pop("my_models", None)
