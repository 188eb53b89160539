"""The map of a run (docs/how-a-run-flows.md) stays true to the package: every module it names exists, and every
module of the package is on it.

The page names modules three ways, and each is checked:

- a path under the package, ``lightning_cnn/run_folder.py`` or ``lightning_cnn/configs/``: that file or folder;
- a dotted name, ``lightning_cnn.training.report`` or ``lightning_cnn.tools.TOOLS``: packages and modules, and
  perhaps, last, a name the last of them defines or imports;
- a bare ``.py`` path, as in the diagram: ``training/trainer_setup.py`` is ``lightning_cnn/training/trainer_setup.py``
  (so a module inside a subpackage is written with its folder), while ``tests/...``, ``benchmarks/...`` and
  ``docs/...`` are files of the repository. ``tools/<name>.py`` is a placeholder, not a name.

A module moved or renamed without the page fails the first test with the name; a module added without a word on the
page fails the second.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "lightning_cnn"
PAGE = REPO / "docs" / "how-a-run-flows.md"
REPO_FOLDERS = ("tests", "benchmarks", "docs")  # bare paths starting here are files of the repository

PREFIXED = re.compile(r"\blightning_cnn/([\w./-]*[\w/])")
DOTTED = re.compile(r"\blightning_cnn((?:\.\w+)+)")
BARE_PY = re.compile(r"(?<![\w/.<>-])((?:\w+/)*\w+\.py)\b")


def defines(module: Path, name: str) -> bool:
    """Whether the module file (or a package's ``__init__.py``) defines or imports ``name``."""
    source = (module / "__init__.py" if module.is_dir() else module).read_text(encoding="utf-8")
    defined = rf"^\s*(?:def|class)\s+{name}\b|^{name}\s*[:=]"
    imported = rf"^\s*from\s+\S+\s+import\s+(?:[^\n(]*|\([^)]*)\b{name}\b"
    return re.search(f"{defined}|{imported}", source, re.MULTILINE) is not None


def holds_files(folder: Path) -> bool:
    """A package folder, or a data folder with files in it (not only the ``__pycache__`` a move leaves behind)."""
    if (folder / "__init__.py").is_file():
        return True
    return any(f.is_file() and "__pycache__" not in f.parts for f in folder.rglob("*"))


def path_exists(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and holds_files(path))


def dotted_module(parts: list[str]) -> bool:
    """Whether ``lightning_cnn.<parts>`` names a package or module, or a name one of them defines."""
    current = PACKAGE
    for i, part in enumerate(parts):
        if current.is_dir() and (current / part / "__init__.py").is_file():
            current = current / part
        elif current.is_dir() and (current / f"{part}.py").is_file():
            current = current / f"{part}.py"
        else:
            return i == len(parts) - 1 and defines(current, part)
    return True


def named_modules(text: str) -> list[tuple[str, str | None, bool]]:
    """Each module name in ``text``: (as written, the top-level part of the package it is in or None, exists)."""
    found = []
    for match in PREFIXED.finditer(text):
        relative = match[1].rstrip("/")
        found.append((match[0], relative.split("/")[0].removesuffix(".py"), path_exists(PACKAGE / relative)))
    for match in DOTTED.finditer(text):
        parts = match[1].lstrip(".").split(".")
        found.append((match[0], parts[0], dotted_module(parts)))
    for match in BARE_PY.finditer(text):
        path = match[1]
        if path.startswith("lightning_cnn/"):
            continue  # a path under the package: checked above
        if path.split("/")[0] in REPO_FOLDERS:
            found.append((path, None, (REPO / path).is_file()))
        else:
            found.append((path, path.split("/")[0].removesuffix(".py"), (PACKAGE / path).is_file()))
    return found


def top_level_parts() -> set[str]:
    """Every module and subpackage directly in the package, ``__init__`` aside."""
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return modules | {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def test_every_name_on_the_map_exists() -> None:
    missing = sorted({written for written, _, exists in named_modules(PAGE.read_text(encoding="utf-8")) if not exists})
    assert not missing, f"{PAGE.name} names modules that are not in the package (moved or renamed?): {missing}"


def test_every_module_is_on_the_map() -> None:
    named = {part for _, part, exists in named_modules(PAGE.read_text(encoding="utf-8")) if exists}
    absent = sorted(top_level_parts() - named)
    assert not absent, f"{PAGE.name} does not name these modules of lightning_cnn; say where they act: {absent}"


def test_a_wrong_name_is_caught() -> None:
    """The check itself: each way of naming a module, once right and once wrong."""
    right = (
        "`lightning_cnn/cli.py`, `lightning_cnn/configs/`, `lightning_cnn.models.base`, `lightning_cnn.models.MODELS`,"
        " `models/base.py`, `preflight.py`, `tests/test_docs_map.py`, `tools/<name>.py`"
    )
    assert [exists for *_, exists in named_modules(right)] == [True] * 7
    wrong = (
        "`lightning_cnn/clii.py`, `lightning_cnn.models.bass`, `lightning_cnn.models.base.NoSuchModel`,"
        " `models/bass.py`, `trainer_setup.py`, `tests/test_no_such_file.py`"
    )
    assert [exists for *_, exists in named_modules(wrong)] == [False] * 6
