"""The two implementations of the conversion core, loaded side by side: the `.py` sources and the Cython twins."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import ccproxy.core

CORE_DIR = Path(ccproxy.core.__file__).resolve().parent
# In dependency order, as ccproxy/core/__init__.py installs them.
CORE_MODULES = ("nesting", "usage", "sse", "stream", "response", "stages", "relay", "validate", "request")


@dataclass(frozen=True)
class Core:
    """One implementation of the conversion core."""

    name: str
    nesting: ModuleType
    usage: ModuleType
    sse: ModuleType
    stream: ModuleType
    response: ModuleType
    stages: ModuleType
    relay: ModuleType
    validate: ModuleType
    request: ModuleType


def load_pure_core() -> Core:
    """The `.py` sources under private names, each importing the pure versions of its siblings.

    While they load, the pure modules stand in for `ccproxy.core.<name>` in sys.modules: otherwise the pure
    stream module would bind the compiled `usage` helpers (the twins are installed under the pure names).
    """
    saved = {name: sys.modules.get(f"ccproxy.core.{name}") for name in CORE_MODULES}
    modules: dict[str, ModuleType] = {}
    try:
        for name in CORE_MODULES:
            private = f"ccproxy_bench_pure_{name}"
            spec = importlib.util.spec_from_file_location(private, CORE_DIR / f"{name}.py")
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {CORE_DIR / f'{name}.py'}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[private] = module
            sys.modules[f"ccproxy.core.{name}"] = module
            spec.loader.exec_module(module)
            modules[name] = module
    finally:
        for name, original in saved.items():
            if original is None:
                sys.modules.pop(f"ccproxy.core.{name}", None)
            else:
                sys.modules[f"ccproxy.core.{name}"] = original
    return Core(name="py", **modules)


def load_compiled_core() -> Core:
    """The Cython twins `ccproxy.core._<name>_c`; ImportError if any is not built."""
    modules = {name: importlib.import_module(f"ccproxy.core._{name}_c") for name in CORE_MODULES}
    for name, module in modules.items():
        if not str(module.__file__).endswith((".so", ".pyd")):
            raise ImportError(f"ccproxy.core._{name}_c at {module.__file__} is not a compiled extension")
    return Core(name="c", **modules)


def pure_bindings(core: Core) -> dict[str, list[str]]:
    """Names in each compiled module that are bound to pure-Python functions of another core module.

    A twin that imported a sibling before the sibling's twin was installed under the pure name keeps calling the
    pure code; the benchmarks then measure a mixed core, which the summary points out.
    """
    compiled_names = {f"ccproxy.core.{name}" for name in CORE_MODULES}
    found: dict[str, list[str]] = {}
    for name in CORE_MODULES:
        module = getattr(core, name)
        mixed = [
            attr
            for attr, value in vars(module).items()
            if type(value).__name__ == "function" and getattr(value, "__module__", None) in compiled_names
        ]
        if mixed:
            found[name] = mixed
    return found
