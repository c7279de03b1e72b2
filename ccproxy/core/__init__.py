"""The conversion core: pure, synchronous, no IO. Anthropic <-> OpenAI request, response and stream shapes.

Compiled twins. Each hot module `ccproxy/core/<name>.py` is the source of truth; `setup.py` compiles the same source
with Cython into `ccproxy.core._<name>_c` (skip with `CCPROXY_BUILD_CYTHON=false`). This is the one place that picks
the implementation: unless `CCPROXY_ENABLE_CYTHON=false`, the compiled twins are installed under the pure module names
before anything imports them, so every `from ccproxy.core.stream import ...` gets the compiled code. Like
`AIOHTTP_NO_EXTENSIONS`, the switch is read once, at import, from the process environment.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

# In dependency order: a twin's own imports of core modules must already resolve to twins.
COMPILED_MODULES = ("nesting", "usage", "sse", "stream", "response", "stages", "relay", "validate", "request")
ENABLE_ENV = "CCPROXY_ENABLE_CYTHON"

log = logging.getLogger("ccproxy.core")


def cython_requested(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(ENABLE_ENV, "true")
    return value.strip().lower() not in ("0", "false", "no", "off")


def _install_compiled_twins() -> str:
    """Alias every compiled twin under its pure name; "cython" on success, else "python" with a warning."""
    if not cython_requested():
        return "python"
    package = sys.modules[__name__]
    installed: list[str] = []
    try:
        for name in COMPILED_MODULES:
            # Alias each twin before importing the next, so the next one's imports bind compiled code too.
            twin = importlib.import_module(f"{__name__}._{name}_c")
            sys.modules[f"{__name__}.{name}"] = twin
            setattr(package, name, twin)
            installed.append(name)
    except ImportError as exc:
        for name in installed:  # all or nothing: never a mixed core
            del sys.modules[f"{__name__}.{name}"]
            delattr(package, name)
        # A broken or skipped build must be visible: the start-up log and GET / say which core runs, and the
        # test suite fails (tests/test_compiled_core.py) rather than silently testing the pure core twice.
        log.warning("compiled core unavailable (%s); running the pure-Python core", exc)
        return "python"
    return "cython"


_IMPLEMENTATION = _install_compiled_twins()


def implementation_name() -> str:
    """Which core is running: "python" or "cython" (shown by GET / and the start-up log)."""
    return _IMPLEMENTATION
