"""Build and check the wheels of ccproxy-server and of every plugin under plugins/: one per distribution, the compiled
core inside ccproxy-server's, and each one installs and imports.

    python tools/check_wheels.py --build                  build with `python -m build` into a temporary folder (CI)
    python tools/check_wheels.py --wheel-dir DIR --with-deps   check wheels built elsewhere (the Dockerfile)

The install check puts the wheels into a throwaway folder with `pip install --target` and imports, with this
interpreter and that folder first on PYTHONPATH, every top-level module of every wheel, every compiled extension
module inside them (any `*.so`, so no module list to keep in step with setup.py) and their `ccproxy` entry points.
Without --with-deps the dependencies come from this interpreter's environment (CI's .venv); with it, from DIR.
Standard library only: it runs in the container build stage before anything is installed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE_DIR = "ccproxy/core/"
COMPILED_SUFFIXES = (".so", ".pyd")
ENTRY_POINT_GROUP = "ccproxy"


class WheelError(Exception):
    """A wheel is missing, ambiguous or not what it should be; the message says which and why."""


def project_dirs(root: Path) -> list[Path]:
    """ccproxy-server (the root) and every folder under plugins/ that has a pyproject.toml."""
    return [root, *sorted(path.parent for path in (root / "plugins").glob("*/pyproject.toml"))]


def distribution_name(project: Path) -> str:
    with (project / "pyproject.toml").open("rb") as handle:
        name: str = tomllib.load(handle)["project"]["name"]
    return name


def wheel_name_prefix(distribution: str) -> str:
    """The distribution part of a wheel's file name (PEP 427 escaping, as build backends write it)."""
    return re.sub(r"[-_.]+", "_", distribution).lower() + "-"


def find_wheel(wheel_dir: Path, distribution: str) -> Path:
    prefix = wheel_name_prefix(distribution)
    found = sorted(path for path in wheel_dir.glob("*.whl") if path.name.lower().startswith(prefix))
    if len(found) != 1:
        names = ", ".join(path.name for path in found) or "none"
        raise WheelError(f"{distribution}: expected one wheel in {wheel_dir}, found {names}")
    return found[0]


def is_compiled(member: str) -> bool:
    return member.endswith(COMPILED_SUFFIXES)


def check_server_wheel(wheel: Path) -> list[str]:
    """The compiled core is in the wheel (so the wheel is platform-specific) and its generated C sources are not."""
    with zipfile.ZipFile(wheel) as archive:
        core = [name for name in archive.namelist() if name.startswith(CORE_DIR) and name.count("/") == 2]
    problems = []
    if not any(is_compiled(name) for name in core):
        problems.append(f"{wheel.name}: no compiled core module ({CORE_DIR}*.so); was CCPROXY_BUILD_CYTHON false?")
    elif wheel.name.endswith("-none-any.whl"):
        problems.append(f"{wheel.name}: tagged for any platform, but it holds compiled code")
    sources = [name for name in core if name.endswith(".c")]
    if sources:
        problems.append(f"{wheel.name}: ships generated C sources ({', '.join(sources)})")
    return problems


def top_level_modules(wheel: Path) -> list[str]:
    """The importable names a wheel installs: its top-level packages and modules (not metadata, not .data)."""
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
    names = set()
    for member in members:
        first, _, rest = member.partition("/")
        if first.endswith((".dist-info", ".data")):
            continue
        if rest:
            names.add(first)
        elif first.endswith(".py"):
            names.add(first.removesuffix(".py"))
    return sorted(names)


def build_wheels(projects: list[Path], out: Path) -> None:
    """`python -m build` each project: the sdist, then the wheel from the unpacked sdist (so nothing left over in the
    source tree, such as a stale build/ folder, can end up in a wheel), with the build tools of this environment."""
    for project in projects:
        command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(project)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode:
            raise WheelError(f"building {project.name} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def install_into(target: Path, wheels: list[Path], wheel_dir: Path, with_deps: bool) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index"]
    command += ["--find-links", str(wheel_dir)] if with_deps else ["--no-deps"]
    command += ["--target", str(target), *map(str, wheels)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise WheelError(f"pip could not install the wheels:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def compiled_modules(target: Path, modules: list[str]) -> list[str]:
    """Dotted names of the extension modules under the given top-level packages of `target`."""
    found = []
    for top in modules:
        for path in sorted((target / top).rglob("*")) if (target / top).is_dir() else []:
            suffix = next((s for s in importlib.machinery.EXTENSION_SUFFIXES if path.name.endswith(s)), None)
            if suffix is not None:
                parts = path.relative_to(target).parts
                found.append(".".join([*parts[:-1], path.name.removesuffix(suffix)]))
    return found


def probe(target: Path, modules: list[str]) -> list[str]:
    """In this interpreter (started with `target` first on PYTHONPATH): import everything the wheels installed."""
    problems = []
    compiled = compiled_modules(target, modules)
    for name in [*modules, *compiled]:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # any import failure is a finding to report, not a crash
            problems.append(f"import {name}: {type(exc).__name__}: {exc}")
            continue
        where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), "")
        if not Path(where).resolve().is_relative_to(target.resolve()):
            problems.append(f"import {name}: loaded from {where}, not from the installed wheel in {target}")
    if "ccproxy" in modules and compiled:
        # The facades choose the compiled core at import, checking each twin against its installed source.
        try:
            from ccproxy.core import implementation_name

            if implementation_name() != "cython":
                problems.append(f"the installed wheel runs the {implementation_name()} core, not the compiled one")
        except Exception as exc:  # e.g. CompiledCoreError: a twin's source is missing or does not match
            problems.append(f"choosing the core: {type(exc).__name__}: {exc}")
    # The entry points of the installed wheels only (not of anything else this interpreter has installed).
    installed = importlib.metadata.distributions(path=[str(target)])
    entry_points = [ep for dist in installed for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    for entry_point in entry_points:
        try:
            entry_point.load()
        except Exception as exc:  # a plugin that does not load is a finding to report
            problems.append(f"entry point {entry_point.name} = {entry_point.value}: {type(exc).__name__}: {exc}")
    loaded = sorted({entry_point.name for entry_point in entry_points})
    print(f"imported {', '.join(modules)}; {len(compiled)} compiled modules; entry points {', '.join(loaded)}")
    return problems


def run_probe(target: Path, modules: list[str]) -> list[str]:
    """Run `probe` in a fresh interpreter whose imports see `target` before anything else (and not the source tree)."""
    # The compiled core asked for whatever this environment says: the wheel must hold a current one.
    environment = {**os.environ, "PYTHONPATH": str(target), "CCPROXY_ENABLE_CYTHON": "true"}
    command = [sys.executable, str(Path(__file__).resolve()), "--probe", str(target), *modules]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=environment, cwd=target)
    print(result.stdout, end="")
    if result.returncode:
        return result.stderr.strip().splitlines() or [f"the import check exited {result.returncode}"]
    return []


def check(root: Path, wheel_dir: Path, with_deps: bool) -> list[str]:
    """Every problem with the wheels in `wheel_dir`; empty when all is well."""
    projects = project_dirs(root)
    wheels = [find_wheel(wheel_dir, distribution_name(project)) for project in projects]
    problems = check_server_wheel(wheels[0])  # project_dirs lists the root, ccproxy-server, first
    modules = sorted({name for wheel in wheels for name in top_level_modules(wheel)})
    with tempfile.TemporaryDirectory(prefix="ccproxy-wheels-") as scratch:
        target = Path(scratch) / "site"
        install_into(target, wheels, wheel_dir, with_deps)
        problems += run_probe(target, modules)
    print(f"checked {len(wheels)} wheels: {', '.join(wheel.name for wheel in wheels)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree (default: this checkout)")
    parser.add_argument("--build", action="store_true", help="build the wheels with `python -m build` first")
    parser.add_argument("--wheel-dir", type=Path, help="where the wheels are (default with --build: a temporary dir)")
    parser.add_argument("--with-deps", action="store_true", help="install the dependencies from --wheel-dir too")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("modules", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe is not None:
        problems = probe(args.probe, args.modules)
        print("\n".join(problems), file=sys.stderr)
        return 1 if problems else 0
    if not args.build and args.wheel_dir is None:
        parser.error("give --build or --wheel-dir")
    try:
        with tempfile.TemporaryDirectory(prefix="ccproxy-dist-") as scratch:
            wheel_dir = args.wheel_dir or Path(scratch)
            if args.build:
                build_wheels(project_dirs(args.root), wheel_dir)
            problems = check(args.root, wheel_dir, args.with_deps)
    except WheelError as exc:
        problems = [str(exc)]
    for problem in problems:
        print(f"check_wheels: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
