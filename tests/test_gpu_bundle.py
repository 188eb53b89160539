"""The GPU bundle without network: benchmarks/gpu_bundle.txt pins, inside every range, each package that the core
dependencies and the search extra need and the GPU machine lacks; run_gpu_check.sh installs from the bundle only and
never torch; the on-machine check names what is missing.

The requirement graph is read from the metadata of what this environment installed (the same releases as the pins),
with the GPU machine's markers: Python 3.12 on x86-64 Linux."""

from __future__ import annotations

import importlib.metadata as metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from benchmarks import gpu_bundle

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 has no tomllib
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PINS_FILE = ROOT / "benchmarks" / "gpu_bundle.txt"
SCRIPT = ROOT / "benchmarks" / "run_gpu_check.sh"
# what the lent GPU machine has preinstalled (and what those bring along) and so must never be in the bundle
PREINSTALLED = {
    canonicalize_name(name)
    for name in (
        "torch", "torchvision", "lightning", "pytorch-lightning", "lightning-utilities", "torchmetrics",
        "tensorboard", "matplotlib", "numpy", "pillow", "PyYAML", "timm", "rich", "onnx", "onnxruntime",
        "packaging", "tqdm", "typing-extensions", "jinja2", "MarkupSafe", "fsspec",
    )
}  # fmt: skip
# the GPU machine, for evaluating requirement markers: CPython 3.12 on x86-64 Linux
GPU_MARKERS = {
    "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
    "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}  # fmt: skip


def pins() -> dict[str, Requirement]:
    """benchmarks/gpu_bundle.txt's requirements by normalized name; each line must be one ``name==version``."""
    found: dict[str, Requirement] = {}
    for line in PINS_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        assert [s.operator for s in requirement.specifier] == ["=="], f"not pinned to one version: {line}"
        name = canonicalize_name(requirement.name)
        assert name not in found, f"pinned twice: {requirement.name}"
        found[name] = requirement
    return found


def pinned_version(requirement: Requirement) -> str:
    return next(iter(requirement.specifier)).version


def project_requirements() -> list[Requirement]:
    """pyproject.toml's core dependencies and its search extra: what the GPU check and a search need."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["search"]
    return [Requirement(line) for line in lines]


def applies_on_gpu(requirement: Requirement, extras: frozenset[str]) -> bool:
    """Whether ``requirement`` holds on the GPU machine for a distribution installed with ``extras``."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**GPU_MARKERS, "extra": extra}) for extra in {"", *extras})


def installed_requires(name: str) -> list[str]:
    """The requirements of ``name`` as installed here (the test environment holds the search extra); none when it
    is not installed, which the pin check then reports, being unpinned."""
    try:
        return metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []


def needed() -> list[tuple[str, Requirement]]:
    """Every (who needs it, requirement) of the project's core and search requirements, followed through the
    installed packages' metadata, extras included, and stopped at what the GPU machine has."""
    todo = [("pyproject.toml", r) for r in project_requirements()]
    seen: set[tuple[str, frozenset[str]]] = set()
    found = []
    while todo:
        parent, requirement = todo.pop()
        name, extras = canonicalize_name(requirement.name), frozenset(requirement.extras)
        if name in PREINSTALLED:
            continue
        found.append((parent, requirement))
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for line in installed_requires(requirement.name):
            child = Requirement(line)
            if applies_on_gpu(child, extras):
                todo.append((requirement.name, child))
    return found


def test_every_package_the_gpu_machine_lacks_is_pinned_within_every_range():
    pinned = pins()
    requirements = needed()
    names = {canonicalize_name(r.name) for _, r in requirements}
    assert {"jsonargparse", "docstring-parser", "typeshed-client", "optuna", "sqlalchemy", "alembic"} <= names
    assert names - pinned.keys() == set(), "needed on the GPU machine but not in benchmarks/gpu_bundle.txt"
    for parent, requirement in requirements:
        version = pinned_version(pinned[canonicalize_name(requirement.name)])
        assert requirement.specifier.contains(version, prereleases=True), f"{parent} needs {requirement}: {version}"


def test_the_bundle_holds_nothing_the_gpu_machine_has_nor_more_than_is_needed():
    pinned = pins()
    assert pinned.keys() & PREINSTALLED == set(), "the GPU machine's own packages (torch above all) must be used"
    assert pinned.keys() - {canonicalize_name(r.name) for _, r in needed()} == set(), "pinned but needed by nothing"


def test_run_script_installs_the_bundle_alone_without_index_or_dependencies_and_never_torch():
    script = SCRIPT.read_text()
    installs = [line for line in script.splitlines() if re.search(r"pip\s+install", line)]
    assert installs, "no pip install in run_gpu_check.sh"
    for line in installs:
        for flag in ("--no-index", "--no-deps", "--target"):
            assert flag in line, line
        assert "torch" not in line and ".whl" in line, line
    assert "timeout" in script and "benchmarks.gpu_check" in script and '"$@"' in script


def test_make_gpu_bundle_downloads_the_pins_alone_as_python_312_wheels():
    target = (ROOT / "Makefile").read_text().split("\ngpu-bundle:", 1)[1].split("\n\n", 1)[0]
    download = target.split("pip download", 1)[1]
    for option in ("--no-deps", "--only-binary=:all:", "--python-version 3.12", "-r benchmarks/gpu_bundle.txt"):
        assert option in download, option
    assert "pip wheel --quiet --no-deps" in target


def write_dist(site: Path, name: str, requires: list[str]) -> None:
    """A minimal installed distribution in ``site``: its dist-info with a METADATA file."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0", *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_the_on_machine_check_names_what_is_missing_or_out_of_range_and_nothing_else(tmp_path):
    write_dist(tmp_path, "lightning-cnn", [
        "torch>=2", "no-such-package-anywhere>=1", "packaging>=999", 'optuna>=3; extra == "search"',
        'not-needed-either; extra == "docs"',
    ])  # fmt: skip
    problems = gpu_bundle.unmet(gpu_bundle.bundled(tmp_path))
    assert problems == [
        "lightning-cnn needs no-such-package-anywhere>=1: not installed",
        f"lightning-cnn needs packaging>=999: {metadata.version('packaging')} installed",
    ]
