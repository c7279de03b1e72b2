"""Build hook for the optional Cython twins of the conversion core.

`CCPROXY_BUILD_CYTHON=false` skips them; the pure-Python modules are always installed and are the source of truth.
All project metadata lives in pyproject.toml.
"""

from __future__ import annotations

import os

from setuptools import setup

# Pure-Python core modules that get a compiled twin `<name>_c` (see ccproxy/core/__init__.py).
CYTHON_MODULES: list[str] = []


def _extensions() -> list[object]:
    if os.environ.get("CCPROXY_BUILD_CYTHON", "true").lower() in ("0", "false", "no", "off") or not CYTHON_MODULES:
        return []
    from Cython.Build import cythonize
    from setuptools import Extension

    extensions = [Extension(f"ccproxy.core.{name}_c", [f"ccproxy/core/{name}_c.py"]) for name in CYTHON_MODULES]
    return list(cythonize(extensions, compiler_directives={"language_level": "3"}, quiet=True))


setup(ext_modules=_extensions(), py_modules=["sanic_config"])
