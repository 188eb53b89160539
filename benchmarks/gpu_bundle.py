"""Checks the GPU bundle once installed on the GPU machine: what runs there, and whether the wheels have all they need.

    python3 -m benchmarks.gpu_bundle /tmp/site    # the folder that run_gpu_check.sh installed the wheels into

``make gpu-bundle`` downloads the wheels listed in benchmarks/gpu_bundle.txt; that machine has no network, so they
are installed with ``--no-deps`` next to its own torch. A requirement that nothing there meets would otherwise show
up minutes later as an ImportError inside a cell: this prints the versions the check will use and stops at once,
naming every requirement that is missing or out of range. Needs only the standard library and ``packaging``
(Lightning's own requirement), so it runs before anything of the bundle is trusted.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import platform
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# the project is checked with the extra the bundle is for: hyper-parameter search (optuna)
PROJECT, PROJECT_EXTRAS = "lightning-cnn", frozenset({"search"})
SHOWN = ("torch", "torchvision", "lightning", "jsonargparse", "optuna", "lightning_cnn")


def bundled(site: Path) -> dict[str, metadata.Distribution]:
    """The distributions installed into ``site``, by normalized name."""
    return {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site)])}


def applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    """Whether ``requirement`` holds on this machine for a distribution installed with ``extras``."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras})


def problem(requirement: Requirement) -> str | None:
    """Why ``requirement`` is not met by what Python finds (the bundle first, then the machine's own), or None."""
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return f"{requirement}: not installed"
    if not requirement.specifier.contains(version, prereleases=True):
        return f"{requirement}: {version} installed"
    return None


def unmet(dists: dict[str, metadata.Distribution]) -> list[str]:
    """Every unmet requirement of the bundled distributions; the project with its search extra, and a bundled
    distribution that is required with extras (jsonargparse[signatures]) with those extras' requirements too."""
    todo = [(name, PROJECT_EXTRAS if name == PROJECT else frozenset()) for name in dists]
    done: set[tuple[str, frozenset[str]]] = set()
    problems = []
    while todo:
        name, extras = todo.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        for line in dists[name].requires or []:
            requirement = Requirement(line)
            if not applies(requirement, extras):
                continue
            if (why := problem(requirement)) is not None:
                problems.append(f"{dists[name].metadata['Name']} needs {why}")
            target = canonicalize_name(requirement.name)
            if requirement.extras and target in dists:
                todo.append((target, frozenset(requirement.extras)))
    return sorted(set(problems))


def show_versions(site: Path) -> list[str]:
    """Prints Python's version and each module of ``SHOWN`` with its version and folder; returns the problems:
    a module that does not import, and torch taken from the bundle instead of the machine's own build."""
    print(f"python {platform.python_version()} ({sys.executable})")
    problems = []
    for name in SHOWN:
        try:
            module = importlib.import_module(name)
        except Exception as err:  # report every module, then stop: one missing import hides no other
            problems.append(f"import {name}: {type(err).__name__}: {err}")
            continue
        folder = Path(module.__file__ or "").resolve().parent
        print(f"{name} {getattr(module, '__version__', '?')} ({folder})")
        if name == "torch":
            print(f"  CUDA {module.version.cuda}, GPUs visible: {module.cuda.device_count()}")
            if site.resolve() in folder.parents:
                problems.append(f"torch comes from {site}: the machine's preinstalled torch must be used")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Prints the versions and the bundle's wheels; 1 (and what is wrong) when a requirement is unmet."""
    site = Path((argv if argv is not None else sys.argv[1:])[0])
    dists = bundled(site)
    print("bundle: " + ", ".join(f"{d.metadata['Name']} {d.version}" for d in dists.values()))
    problems = show_versions(site) + unmet(dists)
    for line in problems:
        print(f"bundle check: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
