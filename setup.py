"""Build hook for the optional Cython twins of the conversion core.

`CCPROXY_BUILD_CYTHON=false` skips them; the pure-Python sources `ccproxy/core/_<name>_py.py` are always installed and
are the source of truth (a hand-written twin is compiled from its `_<name>_c.pyx` instead). The module list and the
rule for making a twin's source live in ccproxy/core/_twins.py. All project metadata lives in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def _twins() -> ModuleType:
    """ccproxy/core/_twins.py, loaded by path: importing the package would need ccproxy's dependencies."""
    spec = importlib.util.spec_from_file_location("ccproxy_build_twins", ROOT / "ccproxy" / "core" / "_twins.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TWINS = _twins()


class BuildTwins(build_ext):
    """Compiles each twin from its source as `_twins.compiled_source` rewrites it (sibling imports pointed at the
    compiled twins, the source's sha256 appended, which the facades check at import). The rewritten text is written
    to the build directory only when it changed, so a twin is rebuilt exactly when its source changed, whatever the
    file times say."""

    def run(self) -> None:
        from Cython.Build import cythonize

        generated = Path(self.build_temp) / "ccproxy-twins"
        generated.mkdir(parents=True, exist_ok=True)
        for extension in self.extensions:
            name = extension.name.rpartition("._")[2].removesuffix("_c")
            source = TWINS.compiled_from(name)
            text = TWINS.compiled_source(name, source.read_bytes())
            target = generated / f"_{name}_c{source.suffix}"
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                target.write_text(text, encoding="utf-8")
            extension.sources = [str(target)]
        directives = {"language_level": "3", "binding": True}
        translated = cythonize(self.extensions, compiler_directives=directives, quiet=True)
        c_sources = {extension.name: extension.sources for extension in translated}
        for extension in self.extensions:  # keep the objects build_ext prepared; only the sources become C
            extension.sources = c_sources[extension.name]
        super().run()


def _extensions() -> list[Extension]:
    if os.environ.get("CCPROXY_BUILD_CYTHON", "true").lower() in ("0", "false", "no", "off"):
        return []
    return [
        Extension(TWINS.compiled_name(name), [str(TWINS.compiled_from(name).relative_to(ROOT))])
        for name in TWINS.COMPILED_MODULES
    ]


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildTwins}, py_modules=["sanic_config"])
