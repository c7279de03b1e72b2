"""Build hook for the optional Cython twins of the conversion core.

`CCPROXY_BUILD_CYTHON=false` skips them; the pure-Python modules are always installed and are the source of truth.
All project metadata lives in pyproject.toml.
"""

from __future__ import annotations

import os

from setuptools import setup

# Pure-Python core modules compiled into a twin `ccproxy.core._<name>_c` from the same source
# (ccproxy/core/__init__.py selects them at import).
CYTHON_MODULES: list[str] = ["nesting", "usage", "sse", "stream", "response", "stages", "relay", "validate", "request"]


def _extensions() -> list[object]:
    if os.environ.get("CCPROXY_BUILD_CYTHON", "true").lower() in ("0", "false", "no", "off") or not CYTHON_MODULES:
        return []
    from Cython.Build import cythonize
    from setuptools import Extension

    extensions = [Extension(f"ccproxy.core._{name}_c", [f"ccproxy/core/{name}.py"]) for name in CYTHON_MODULES]
    directives = {"language_level": "3", "binding": True}
    return list(cythonize(extensions, compiler_directives=directives, quiet=True))


setup(ext_modules=_extensions(), py_modules=["sanic_config"])
