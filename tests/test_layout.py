"""The package's shape: imports point one way, optional dependencies stay optional, every tool answers --help,
and a user's own model trains by class path without an edit to the package."""

from __future__ import annotations

import ast
import dataclasses
import dis
import functools
import importlib
import inspect
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

from lightning_cnn.__main__ import LIGHTNING_SUBCOMMANDS
from lightning_cnn.tools import TOOLS
from tests.helpers.runs import QUICK

PACKAGE = Path(__file__).resolve().parent.parent / "lightning_cnn"

# Each part of the package and the parts it may import (besides itself and everything those may import).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "registry": set(),
    "internals": set(),
    "run_folder": {"checkpoints"},
    "config_files": {"errors", "run_folder"},
    "checkpoints": {"errors", "internals"},
    "schedulers": {"errors", "internals"},
    # data: the losses share ShownByArguments (data/augment.py) with the augmentations and mixes
    "models": {"checkpoints", "schedulers", "registry", "internals", "data"},
    "data": {"checkpoints", "registry", "internals"},
    "training": {"models", "data", "config_files", "preflight", "inference"},  # inference: the report's Grad-CAM
    "preflight": {"models", "schedulers", "config_files"},
    "cli": {"training", "preflight", "config_files"},
    "inference": {"checkpoints", "run_folder", "models", "data"},
    "experiments": {"cli"},
    # the tools build on the library; nothing but the command line imports them
    "tools": {"cli", "experiments", "inference", "training"},
    "__main__": {"tools", "cli"},
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


def test_only_the_command_line_imports_the_tools():
    """The tools build on the library, never the library on them: no part but ``__main__`` may reach ``tools``."""
    assert [part for part in ALLOWED if part not in ("tools", "__main__") and "tools" in reachable(part)] == []


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
    code = "import sys, lightning_cnn.cli, lightning_cnn.__main__; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert not loaded & {"optuna", "onnx", "onnxruntime", "onnxscript"}


def test_top_level_help_lists_every_subcommand_and_tool(run_cli, capsys):
    from lightning_cnn.__main__ import main

    main(["--help"])
    out = capsys.readouterr().out
    for name in [*LIGHTNING_SUBCOMMANDS, *TOOLS]:
        assert f"  {name} " in out


@pytest.mark.parametrize("command", [*LIGHTNING_SUBCOMMANDS, *TOOLS])
def test_every_subcommand_and_tool_answers_help(command, capsys):
    from lightning_cnn.__main__ import main

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


# The fence around other libraries' private names: only lightning_cnn/internals.py names them. A private name
# is `_x`: not a dunder `__x__`, not `_` and not an Enum sunder `_x_` (public Enum API).
FENCE = PACKAGE / "internals.py"
# the class machinery writes these into a class's __dict__ (ABCMeta, Protocol), not our code
MACHINERY = frozenset({"_abc_impl", "_is_protocol", "_is_runtime_protocol"})
# str methods whose arguments are pieces of text (a suffix such as "_step"), not names
TEXT_METHODS = frozenset(
    {"startswith", "endswith", "removeprefix", "removesuffix", "split", "rsplit", "partition", "rpartition",
     "replace", "strip", "lstrip", "rstrip", "join", "find", "rfind", "index", "rindex", "count", "format"}
)  # fmt: skip
ATTRIBUTE_OPS = frozenset({"LOAD_ATTR", "STORE_ATTR", "DELETE_ATTR", "LOAD_METHOD"})


def is_private(name: str) -> bool:
    """``_x``: not a dunder, not ``_`` and not an Enum sunder name ``_x_`` (public Enum API)."""
    return (
        name.isidentifier()
        and name.startswith("_")
        and not name.startswith("__")
        and len(name) > 1
        and not (len(name) > 2 and name.endswith("_"))
    )


def is_ours(cls: type) -> bool:
    """Whether ``cls`` is a class of the package (not of a library, nor of Python's standard library)."""
    return cls.__module__.split(".")[0] == "lightning_cnn"


@functools.cache
def parsed() -> dict[Path, ast.Module]:
    """Every module of the package, parsed once for all the tests that read them."""
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))}


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{line}"


def code_objects(value: Any) -> list[types.CodeType]:
    """The code of a class attribute (a function, property, static or class method) and of the code inside it."""
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, functools.cached_property):
        value = value.func
    functions = [value.fget, value.fset, value.fdel] if isinstance(value, property) else [value]
    functions += [inspect.unwrap(f) for f in functions if callable(f)]  # under a decorator such as rank_zero_only
    todo = [code for f in functions if isinstance(code := getattr(f, "__code__", None), types.CodeType)]
    found = []
    while todo:
        code = todo.pop()
        found.append(code)
        todo += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return found


@functools.cache
def privates_of(cls: type) -> frozenset[str]:
    """The private names an outside class holds, and those its methods read or write on an object (its instance
    attributes, which no class ``__dict__`` shows) or name as a string (``getattr(self, "_x")``)."""
    names = {name for name in vars(cls) if is_private(name)}
    for value in list(vars(cls).values()):
        for code in code_objects(value):
            names |= {i.argval for i in dis.get_instructions(code) if i.opname in ATTRIBUTE_OPS}
            names |= {c for c in code.co_consts if isinstance(c, str)}
    return frozenset(name for name in names if isinstance(name, str) and is_private(name))


@functools.cache
def registered(cls: type) -> frozenset[str]:
    """The private members of ``cls``'s outside bases that internals.OVERRIDDEN lists for our subclasses."""
    from lightning_cnn.internals import OVERRIDDEN

    names: set[str] = set()
    for owner, members in OVERRIDDEN.items():
        module, name = owner.rsplit(".", 1)
        if getattr(importlib.import_module(module), name) in cls.__mro__:
            names |= set(members)
    return frozenset(names)


def outside_owner(cls: type, name: str) -> type | None:
    """The first outside class in ``cls``'s MRO that has or uses private ``name``."""
    return next((base for base in cls.__mro__ if not is_ours(base) and name in privates_of(base)), None)


@functools.cache
def runtime_class(module: str, qualname: str) -> type | None:
    """Our class ``module.qualname``, or None for one defined inside a function or needing a missing package."""
    try:
        found: Any = importlib.import_module(module)
    except ModuleNotFoundError as missing:
        if (missing.name or "").startswith("lightning_cnn"):
            raise
        return None
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found if isinstance(found, type) and found.__qualname__ == qualname else None


@dataclasses.dataclass
class PrivateUse:
    line: int
    name: str
    cls: str | None = None  # the qualname of the class whose instance (self, cls, super()) it is on
    defines: bool = False  # a definition (an assignment, def, parameter) rather than a use
    member: bool = False  # defined in a class's body: the check of each class's own members reports an override


class PrivateNames(ast.NodeVisitor):
    """Every private name a module defines or uses, where, and on which of its classes' instances."""

    def __init__(self) -> None:
        self.found: list[PrivateUse] = []
        self.imports: list[tuple[int, str]] = []  # (line, the private part) of an outside library's private import
        self.classes: dict[str, tuple[int, dict[str, int]]] = {}  # qualname: (line, {body name: line})
        self.scopes: list[tuple[ast.AST, str]] = []  # enclosing defs and classes, with qualnames
        self.skip: set[int] = set()  # ids of string constants that are not names

    def note(self, line: int, name: str, cls: str | None = None, defines: bool = False, member: bool = False) -> None:
        if is_private(name):
            self.found.append(PrivateUse(line, name, cls, defines, member))

    def class_body(self) -> str | None:
        """The qualname of the class whose body the visit is in, directly."""
        return self.scopes[-1][1] if self.scopes and isinstance(self.scopes[-1][0], ast.ClassDef) else None

    def qualname(self, name: str) -> str:
        """The ``__qualname__`` Python gives a def or class ``name`` at this point of the visit."""
        if not self.scopes:
            return name
        node, outer = self.scopes[-1]
        return (
            f"{outer}.<locals>.{name}"
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            else f"{outer}.{name}"
        )

    def instance_of(self, node: ast.expr) -> str | None:
        """The class whose instance ``node`` is when it is a method's ``self`` or ``cls`` or ``super()``."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super":
            name = None
        elif isinstance(node, ast.Name):
            name = node.id
        else:
            return None
        for i in range(len(self.scopes) - 1, -1, -1):
            scope, _ = self.scopes[i]
            if isinstance(scope, ast.ClassDef):
                continue
            params = [*scope.args.posonlyargs, *scope.args.args]
            method = i > 0 and isinstance(self.scopes[i - 1][0], ast.ClassDef) and not isinstance(scope, ast.Lambda)
            static = method and any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in scope.decorator_list)
            if name is None or name in {a.arg for a in [*params, *scope.args.kwonlyargs]}:
                if method and not static and params and (name is None or params[0].arg == name):
                    return self.scopes[i - 1][1]
                return None
        return None

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        qualname = self.qualname(node.name)
        self.note(node.lineno, node.name, defines=True)
        body: dict[str, int] = {}
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                body[stmt.name] = stmt.lineno
            for target in getattr(stmt, "targets", [getattr(stmt, "target", None)]):
                for name in ast.walk(target) if target is not None else ():
                    if isinstance(name, ast.Name):
                        body[name.id] = stmt.lineno
        self.classes[qualname] = (node.lineno, body)
        for decorator in node.decorator_list:
            self.visit(decorator)
        for base in [*node.bases, *node.keywords]:
            self.visit(base)
        self.scopes.append((node, qualname))
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        qualname = self.qualname(getattr(node, "name", "<lambda>"))
        if not isinstance(node, ast.Lambda):
            cls = self.class_body()
            self.note(node.lineno, node.name, cls, defines=True, member=cls is not None)
            for decorator in node.decorator_list:
                self.visit(decorator)
            if node.returns:
                self.visit(node.returns)
        args = node.args
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                self.note(arg.lineno, arg.arg, defines=True)
                if arg.annotation:
                    self.visit(arg.annotation)
        self.scopes.append((node, qualname))
        for stmt in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(stmt)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):  # a private name used but not defined here is an import, checked there
            cls = self.class_body()
            self.note(node.lineno, node.id, cls, defines=True, member=cls is not None)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        cls = self.instance_of(node.value)
        # `self._x = ...` defines _x (unless an outside base has it); `other._x = ...` writes someone's _x
        self.note(node.lineno, node.attr, cls, defines=cls is not None and isinstance(node.ctx, ast.Store))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) > 1
        ):
            name = node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                self.skip.add(id(name))
                cls = self.instance_of(node.args[0])
                self.note(node.lineno, name.value, cls, defines=cls is not None and func.id == "setattr")
        if isinstance(func, ast.Attribute) and func.attr in TEXT_METHODS:
            self.skip |= {id(n) for arg in node.args for n in ast.walk(arg) if isinstance(n, ast.Constant)}
        for keyword in node.keywords:
            if keyword.arg:
                self.note(node.lineno, keyword.arg)
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        self.skip |= {id(n) for n in node.values if isinstance(n, ast.Constant)}
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and id(node) not in self.skip:
            self.note(node.lineno, node.value)  # a key such as hparams["_x"], or an attribute name to look up

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        for name in node.names:
            self.note(node.lineno, name, defines=True)

    visit_Nonlocal = visit_Global

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        module = getattr(node, "module", None) or ""
        ours = getattr(node, "level", 0) > 0 or module.split(".")[0] == "lightning_cnn"
        for alias in node.names:
            self.note(node.lineno, (alias.asname or alias.name).split(".")[0], defines=True)
            path = f"{module}.{alias.name}" if module else alias.name
            private = [part for part in path.split(".") if is_private(part)]
            if private and not ours:
                self.imports.append((node.lineno, path))

    visit_ImportFrom = visit_Import


@functools.cache
def private_names() -> dict[Path, PrivateNames]:
    """What ``PrivateNames`` finds in each module of the package."""
    found = {}
    for path, tree in parsed().items():
        found[path] = PrivateNames()
        found[path].visit(tree)
    return found


def test_only_internals_names_an_outside_librarys_private_names():
    """Each private name of torch, Lightning, jsonargparse, Optuna... that the package reads, writes, calls,
    overrides, imports or passes as a keyword or a key is named in lightning_cnn/internals.py (as a helper, a
    constant or an entry of OVERRIDDEN), so an upgrade that changes one is found there and by test_internals."""
    wrong: list[str] = []
    ours: set[str] = set()  # the private names the package itself defines
    undecided: list[tuple[Path, PrivateUse]] = []
    for path, scan in private_names().items():
        module = module_name(path)
        fenced = path == FENCE
        for line, private in scan.imports:
            if not fenced:
                wrong.append(f"{where(path, line)}: imports {private}")
        for use in scan.found:
            cls = runtime_class(module, use.cls) if use.cls else None
            owner = outside_owner(cls, use.name) if cls else None
            if owner is not None:  # on an instance of our subclass of an outside class: registered, or wrong
                if use.name not in registered(cls) and not use.member and not fenced:
                    wrong.append(f"{where(path, use.line)}: {owner.__name__}.{use.name} (on {use.cls})")
            elif use.defines:
                ours.add(use.name)
            elif not fenced:
                undecided.append((path, use))
        # a class of ours that overrides or shadows a private member of an outside base
        for qualname, (class_line, body) in scan.classes.items():
            cls = runtime_class(module, qualname)
            if cls is None or fenced:
                continue
            for name in sorted(n for n in vars(cls) if is_private(n) and n not in MACHINERY | registered(cls)):
                if (owner := outside_owner(cls, name)) is not None:
                    line = body.get(name, class_line)
                    wrong.append(f"{where(path, line)}: {owner.__name__}.{name} (overridden by {qualname})")
    wrong += [f"{where(path, use.line)}: {use.name}" for path, use in undecided if use.name not in ours]
    wrong = sorted(set(wrong), key=lambda w: (w.split(":")[0], int(w.split(":")[1]), w))
    assert not wrong, "private names of other libraries outside lightning_cnn/internals.py:\n" + "\n".join(wrong)


def our_import_base(path: Path, node: ast.ImportFrom) -> str | None:
    """The lightning_cnn module an ``ImportFrom`` in file ``path`` imports from (relative ones resolved), or None."""
    if node.level == 0:
        return node.module if (node.module or "").split(".")[0] == "lightning_cnn" else None
    package = module_name(path).split(".")  # a module's own package is its name less its last part
    package = package[: len(package) - node.level + (1 if path.name == "__init__.py" else 0)]
    return ".".join([*package, *([node.module] if node.module else [])])


def test_no_module_imports_a_private_name_of_another():
    """A private name is its module's own business: what a sibling needs is public (without the underscore)."""
    wrong = []
    for path, tree in parsed().items():
        bound = {}  # local name: the lightning_cnn module it names
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (base := our_import_base(path, node)):
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    if any(is_private(part) for part in target.split(".")):
                        wrong.append(f"{where(path, node.lineno)}: imports {target}")
                    elif is_module(target):
                        bound[alias.asname or alias.name] = target
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "lightning_cnn":
                        if any(is_private(part) for part in alias.name.split(".")):
                            wrong.append(f"{where(path, node.lineno)}: imports {alias.name}")
                        bound[alias.asname or "lightning_cnn"] = alias.name if alias.asname else "lightning_cnn"
        for node in ast.walk(tree):  # `augment._affine` through a module imported above
            if isinstance(node, ast.Attribute) and is_private(node.attr):
                chain, value = [], node.value
                while isinstance(value, ast.Attribute):
                    chain.insert(0, value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id in bound:
                    target = ".".join([bound[value.id], *chain])
                    if is_module(target):
                        wrong.append(f"{where(path, node.lineno)}: uses {target}.{node.attr}")
    assert not wrong, "private names taken from another module of the package:\n" + "\n".join(sorted(wrong))
