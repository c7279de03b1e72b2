"""The compiled twins of the core: which modules have one, how it is built from its source, and which one runs.

A core module `<name>` with a compiled twin is three files, side by side and all importable:
- `_<name>_py.py`, the source of truth (pure Python, what mypy checks and `CCPROXY_ENABLE_CYTHON=false` runs);
- `_<name>_c`, the Cython extension setup.py compiles from that source (`compiled_source` below);
- `<name>.py`, the facade the rest of ccproxy imports: it exports the `__all__` of the twin `compiled_core()` chose.

A few twins are written by hand (HAND_WRITTEN): `_<name>_c.pyx` is Cython with C types, for work that Python code
compiled as it is cannot make cheap (the usage log line: its numbers written into one C buffer). There the pure
source stays the reference, the extension is compiled from the .pyx, and tests hold the two to the same output.

The rule for imports between twins: a twin imports a sibling twin as `from ccproxy.core._<sibling>_py import ...`,
never through the sibling's facade. The compiled twin is built with those imports rewritten to
`ccproxy.core._<sibling>_c`, so pure code calls pure code and compiled code compiled code whichever the facades
chose, and both implementations can be loaded side by side in one process (the tests run each as `[py]` and `[c]`).
Modules without a twin (plan, jsoncodec, ...) are imported by their plain names from both.

This module imports only the standard library: setup.py loads it by path, before ccproxy's dependencies exist.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import logging
import os
from pathlib import Path
from types import ModuleType

#: The core modules compiled into twins: setup.py, the facades, the tests and the benchmarks all read this list.
#: Adding one: move `<name>.py` to `_<name>_py.py` (with an `__all__`), add a facade `<name>.py`, add the name here.
COMPILED_MODULES: tuple[str, ...] = (
    "nesting",
    "usage",
    "sse",
    "stream",
    "response",
    "stages",
    "relay",
    "validate",
    "request",
    "usageline",
)
#: Twins whose compiled side is hand-written Cython, `_<name>_c.pyx`, rather than compiled from `_<name>_py.py`.
HAND_WRITTEN: frozenset[str] = frozenset({"usageline"})

ENABLE_ENV = "CCPROXY_ENABLE_CYTHON"
#: The global each compiled twin carries: the sha256 of the bytes it was compiled from (`hashed_bytes`).
SOURCE_HASH_NAME = "_SOURCE_SHA256"
REBUILD_HINT = (
    "rebuild it with `python setup.py build_ext --inplace` (in a checkout; ./run-tests.sh does it) or reinstall "
    f"ccproxy-server, or set {ENABLE_ENV}=false to run the pure-Python core"
)
PACKAGE = "ccproxy.core"
CORE_DIR = Path(__file__).resolve().parent

log = logging.getLogger("ccproxy.core")


class CompiledCoreError(RuntimeError):
    """The compiled core was asked for but is stale or incomplete: refused rather than run (one line, no traceback)."""


def cython_requested(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """`CCPROXY_ENABLE_CYTHON`: anything but 0/false/no/off asks for the compiled core (default: asked for)."""
    value = (os.environ if environ is None else environ).get(ENABLE_ENV, "true")
    return value.strip().lower() not in ("0", "false", "no", "off")


#: Read once, at import, from the process environment (like AIOHTTP_NO_EXTENSIONS): the core is chosen before
#: settings exist, and one process never runs two cores.
REQUESTED = cython_requested()


def pure_name(name: str) -> str:
    return f"{PACKAGE}._{name}_py"


def compiled_name(name: str) -> str:
    return f"{PACKAGE}._{name}_c"


def source_path(name: str) -> Path:
    """The pure twin's source: the reference, and what mypy checks."""
    return CORE_DIR / f"_{name}_py.py"


def compiled_from(name: str) -> Path:
    """What the compiled twin is compiled from: its hand-written `.pyx`, else the pure source."""
    return CORE_DIR / f"_{name}_c.pyx" if name in HAND_WRITTEN else source_path(name)


def hashed_bytes(name: str, compiled: bytes) -> bytes:
    """What a twin's `_SOURCE_SHA256` is taken over, given the bytes it is compiled from: those, and for a
    hand-written twin its pure reference too, so that a change to either makes the build stale."""
    return compiled + source_path(name).read_bytes() if name in HAND_WRITTEN else compiled


def source_hash(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


# ------------------------------------------------------------------------------------------ building


def _sibling_import_errors(name: str, tree: ast.Module) -> list[str]:
    """Imports of twinned modules that break the rule: through a facade, of a compiled twin, relative, or whole."""
    twins = {module for other in COMPILED_MODULES for module in (other, f"_{other}_py", f"_{other}_c")}
    errors: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            leaf = module.removeprefix(f"{PACKAGE}.")
            if node.level:
                wrong = [f"relative import from {'.' * node.level}{module}"]
            elif module == PACKAGE:
                wrong = sorted({alias.name for alias in node.names} & twins)
            else:
                wrong = [module] if leaf != module and leaf in twins and not leaf.endswith("_py") else []
        elif isinstance(node, ast.Import):
            wrong = [alias.name for alias in node.names if alias.name.removeprefix(f"{PACKAGE}.") in twins]
        else:
            continue
        errors.extend(f"_{name}_py.py line {node.lineno}: {target}" for target in wrong)
    return errors


def compiled_source(name: str, source: bytes) -> str:
    """The text Cython compiles into `_<name>_c` (`source` is `compiled_from(name)`'s bytes): the source with
    sibling twins' imports pointed at their compiled twins, and the source's hash appended (line numbers are
    unchanged, so tracebacks point at the source's lines). A hand-written twin only gets the hash."""
    text = source.decode("utf-8")
    if name in HAND_WRITTEN:
        return f"{text}\n{SOURCE_HASH_NAME} = {source_hash(hashed_bytes(name, source))!r}\n"
    errors = _sibling_import_errors(name, ast.parse(text))
    if errors:
        raise ValueError(
            f"core twins import each other as `from {PACKAGE}._<name>_py import ...` (ccproxy/core/_twins.py): "
            + "; ".join(errors)
        )
    for sibling in COMPILED_MODULES:
        text = text.replace(f"from {pure_name(sibling)} import", f"from {compiled_name(sibling)} import")
    return f"{text}\n{SOURCE_HASH_NAME} = {source_hash(source)!r}\n"


# ------------------------------------------------------------------------------------------ choosing


def _is_extension(module: ModuleType) -> bool:
    return str(module.__file__).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def _built(name: str) -> bool:
    return importlib.util.find_spec(compiled_name(name)) is not None


def _import_twin(name: str) -> ModuleType:
    try:
        module = importlib.import_module(compiled_name(name))
    except ImportError as exc:  # e.g. an old twin importing a name its sibling no longer has
        raise CompiledCoreError(f"the compiled core cannot load {compiled_name(name)} ({exc}); {REBUILD_HINT}") from exc
    if not _is_extension(module):
        raise CompiledCoreError(f"{compiled_name(name)} at {module.__file__} is not a compiled extension")
    return module


def _is_current(module: ModuleType, name: str) -> bool:
    try:
        hashed = hashed_bytes(name, compiled_from(name).read_bytes())
    except OSError:  # not installed with the package: nothing to tell the build is current
        return False
    return getattr(module, SOURCE_HASH_NAME, None) == source_hash(hashed)


def _stale(names: list[str]) -> CompiledCoreError:
    sources = ", ".join(
        f"ccproxy/core/{compiled_from(name).name} or {source_path(name).name}"
        if name in HAND_WRITTEN
        else f"ccproxy/core/{source_path(name).name}"
        for name in names
    )
    built = ", ".join(compiled_name(name) for name in names)
    return CompiledCoreError(
        f"the compiled core is stale: {sources} changed after {built} {'was' if len(names) == 1 else 'were'} "
        f"built; {REBUILD_HINT}"
    )


def load_compiled(name: str) -> ModuleType:
    """The compiled twin of `name`, refused with CompiledCoreError unless it was built from the current source."""
    module = _import_twin(name)
    if not _is_current(module, name):
        raise _stale([name])
    return module


@functools.cache
def compiled_core() -> bool:
    """Whether the compiled twins run; decided once, on the first facade import.

    Asked for (the default) and built: every twin must be current, else CompiledCoreError. Asked for and not built
    at all (installed with CCPROXY_BUILD_CYTHON=false): the pure core, with a warning. Switched off: the pure core.
    """
    if not REQUESTED:
        return False
    missing = [name for name in COMPILED_MODULES if not _built(name)]
    if len(missing) == len(COMPILED_MODULES):
        # Not silent: the start-up log and GET / name the core that runs, and the test suite fails.
        log.warning(
            "the compiled core is not built; running the pure-Python core (build it with `python setup.py "
            "build_ext --inplace` or reinstall ccproxy-server; %s=false says the pure core is meant)",
            ENABLE_ENV,
        )
        return False
    if missing:
        names = ", ".join(compiled_name(name) for name in missing)
        raise CompiledCoreError(f"the compiled core is incomplete: {names} not built; {REBUILD_HINT}")
    stale = [name for name in COMPILED_MODULES if not _is_current(_import_twin(name), name)]
    if stale:
        raise _stale(stale)
    return True


def implementation_name() -> str:
    """Which core runs: "cython" or "python" (GET / and the start-up log show it)."""
    return "cython" if compiled_core() else "python"


# ------------------------------------------------------------------------------------------ side by side


class Core:
    """One implementation of the twinned core, loaded beside the other: `core.stream` is `_stream_py` or `_stream_c`.

    For the tests (`[py]` / `[c]`) and the benchmarks; the app imports the facades.
    """

    def __init__(self, flavour: str, modules: dict[str, ModuleType]) -> None:
        self.flavour = flavour
        self.modules = modules

    def __getattr__(self, name: str) -> ModuleType:
        modules: dict[str, ModuleType] = self.__dict__.get("modules", {})  # not self.modules: no recursion
        try:
            return modules[name]
        except KeyError:
            raise AttributeError(f"{name!r} is not a twinned core module ({', '.join(COMPILED_MODULES)})") from None

    def __repr__(self) -> str:
        return f"Core({self.flavour!r})"


def load_core(flavour: str) -> Core:
    """Every twin of one flavour: "py" (the sources) or "c" (CompiledCoreError unless built and current)."""
    if flavour == "py":
        return Core("py", {name: importlib.import_module(pure_name(name)) for name in COMPILED_MODULES})
    if flavour == "c":
        return Core("c", {name: load_compiled(name) for name in COMPILED_MODULES})
    raise ValueError(f"unknown core flavour {flavour!r}: 'py' or 'c'")


def foreign_bindings(core: Core) -> dict[str, list[str]]:
    """Names in each of `core`'s modules bound to functions or classes of the other flavour's twins (a mixed core)."""
    other = "c" if core.flavour == "py" else "py"
    foreign = {f"{PACKAGE}._{name}_{other}" for name in COMPILED_MODULES}
    found: dict[str, list[str]] = {}
    for name, module in core.modules.items():
        mixed = sorted(attr for attr, value in vars(module).items() if getattr(value, "__module__", None) in foreign)
        if mixed:
            found[name] = mixed
    return found
