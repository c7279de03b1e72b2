"""The guard of the twinned core: what runs is what was asked for and built from the current sources, never silently.

The `core` fixture's `[c]` tests really run extension modules built from today's `_<name>_py.py`, the `[py]` tests
the sources, neither calling into the other; the facades export the chosen twin; a stale or partial build is refused.
"""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import ccproxy.core._twins as twins
from ccproxy.core import implementation_name
from ccproxy.core._twins import COMPILED_MODULES, CompiledCoreError, Core, load_compiled

CORE_DIR = twins.CORE_DIR
TESTS = Path(__file__).resolve().parent


# ------------------------------------------------------------------------------------------ what the tests ran


def test_the_core_fixture_gives_the_implementation_it_names(core: Core) -> None:
    for name in COMPILED_MODULES:
        module = getattr(core, name)
        if core.flavour == "c":
            assert module.__name__ == f"ccproxy.core._{name}_c"
            assert twins._is_extension(module), module.__file__
            hashed = twins.hashed_bytes(name, twins.compiled_from(name).read_bytes())
            assert twins.source_hash(hashed) == module._SOURCE_SHA256
        else:
            assert module.__name__ == f"ccproxy.core._{name}_py"
            assert module.__file__ == str(twins.source_path(name))


def test_each_implementation_calls_only_its_own_twins(core: Core) -> None:
    assert twins.foreign_bindings(core) == {}


def test_a_mixed_core_would_be_seen() -> None:
    mixed = Core("c", {"response": importlib.import_module("ccproxy.core._response_py")})
    assert "convert_response" in twins.foreign_bindings(mixed)["response"]


def twin_imports(path: Path) -> list[str]:
    """What a test module imports of twinned core code at top level: functions, classes or whole modules."""
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if twinned(alias.name)]
        elif isinstance(node, ast.ImportFrom) and twinned(module_name := node.module or ""):
            module = importlib.import_module(module_name)
            found += [f"{module_name}.{alias.name}" for alias in node.names if callable(getattr(module, alias.name))]
    return found


def twinned(module: str) -> bool:
    package, _, leaf = module.rpartition(".")
    return (
        package == "ccproxy.core" and leaf.removeprefix("_").removesuffix("_py").removesuffix("_c") in COMPILED_MODULES
    )


def test_tests_take_the_core_fixture_instead_of_importing_core_code() -> None:
    # A function imported from a facade runs only the core this process chose, silently: tests that exercise the
    # core call it through the `core` fixture (`core.stream.StreamTranslator`), HTTP and end-to-end tests through
    # the app. Constants (MAX_DEPTH, NESTING_MESSAGE, ...) are the same in both twins and may be imported.
    repo = TESTS.parent
    modules = [*TESTS.rglob("*.py"), *(repo / "plugins").rglob("tests/*.py")]
    assert len([path for path in modules if path.parent.name == "core"]) > 10
    offenders = {str(path.relative_to(repo)): names for path in modules if (names := twin_imports(path))}
    assert offenders == {}, "use the `core` fixture (tests/conftest.py) in these tests"


# ------------------------------------------------------------------------------------------ the module list


def test_every_twinned_module_has_a_source_a_facade_and_one_list() -> None:
    sources = {path.name.removeprefix("_").removesuffix("_py.py") for path in CORE_DIR.glob("_*_py.py")}
    assert sources == set(COMPILED_MODULES), "ccproxy/core/_<name>_py.py and COMPILED_MODULES disagree"
    flavour = "c" if twins.compiled_core() else "py"
    for name in COMPILED_MODULES:
        source = importlib.import_module(f"ccproxy.core._{name}_py")
        chosen = importlib.import_module(f"ccproxy.core._{name}_{flavour}")
        facade = importlib.import_module(f"ccproxy.core.{name}")
        assert source.__all__, name
        for attr in source.__all__:
            assert getattr(facade, attr) is getattr(chosen, attr), f"ccproxy.core.{name}.{attr}"


def module_lists(path: Path) -> list[int]:
    """Lines of literal lists, tuples or sets naming four or more twinned modules (a second module list)."""
    names = set(COMPILED_MODULES)
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.List | ast.Tuple | ast.Set)
        and len({elt.value for elt in node.elts if isinstance(elt, ast.Constant)} & names) >= 4
    ]


def test_there_is_one_module_list() -> None:
    # setup.py, the facades, the tests and the benchmarks all read COMPILED_MODULES; a copy would drift.
    repo = TESTS.parent
    files = [
        path for top in ("ccproxy", "tests", "benchmarks", "tools", "plugins") for path in (repo / top).rglob("*.py")
    ]
    found = {
        str(path.relative_to(repo)): lines for path in [*files, repo / "setup.py"] if (lines := module_lists(path))
    }
    assert found == {"ccproxy/core/_twins.py": module_lists(CORE_DIR / "_twins.py")}
    assert len(found["ccproxy/core/_twins.py"]) == 1


# ------------------------------------------------------------------------------------------ building a twin


@pytest.mark.parametrize("name", [name for name in COMPILED_MODULES if name not in twins.HAND_WRITTEN])
def test_a_twin_is_compiled_from_its_source_pointed_at_compiled_siblings(name: str) -> None:
    assert twins.compiled_from(name) == twins.source_path(name)
    source = twins.source_path(name).read_bytes()
    compiled = twins.compiled_source(name, source)
    body, _, stamp = compiled.rstrip("\n").rpartition("\n")
    assert stamp == f"_SOURCE_SHA256 = {twins.source_hash(source)!r}"
    assert body.count("\n") == source.decode().count("\n")  # same line numbers as the source
    for sibling in COMPILED_MODULES:
        assert f"from ccproxy.core._{sibling}_py import" not in compiled
    assert body.replace("_c import", "_py import") == source.decode()


@pytest.mark.parametrize("name", sorted(twins.HAND_WRITTEN))
def test_a_hand_written_twin_is_compiled_from_its_pyx_as_it_is(name: str) -> None:
    pyx = twins.compiled_from(name)
    assert pyx == CORE_DIR / f"_{name}_c.pyx" and twins.source_path(name).exists()
    source = pyx.read_bytes()
    compiled = twins.compiled_source(name, source)
    hashed = source + twins.source_path(name).read_bytes()  # the .pyx and its pure reference
    assert compiled == f"{source.decode()}\n_SOURCE_SHA256 = {twins.source_hash(hashed)!r}\n"


def test_a_hand_written_twin_older_than_its_pyx_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not twins.REQUESTED:
        pytest.skip("CCPROXY_ENABLE_CYTHON=false: the compiled core is switched off on purpose")
    (name,) = sorted(twins.HAND_WRITTEN)[:1]
    edited = tmp_path / f"_{name}_c.pyx"
    edited.write_bytes(twins.compiled_from(name).read_bytes() + b"# edited after the build\n")
    monkeypatch.setattr(twins, "compiled_from", lambda _: edited)
    with pytest.raises(CompiledCoreError, match=rf"ccproxy/core/_{name}_c.pyx or _{name}_py.py changed after"):
        load_compiled(name)


def test_a_hand_written_twin_older_than_its_pure_reference_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pure twin is the reference the .pyx must match: editing it alone makes the build stale too."""
    if not twins.REQUESTED:
        pytest.skip("CCPROXY_ENABLE_CYTHON=false: the compiled core is switched off on purpose")
    (name,) = sorted(twins.HAND_WRITTEN)[:1]
    edited = tmp_path / f"_{name}_py.py"
    edited.write_bytes(twins.source_path(name).read_bytes() + b"# edited after the build\n")
    monkeypatch.setattr(twins, "source_path", lambda _: edited)
    with pytest.raises(CompiledCoreError, match=rf"_{name}_py.py changed after ccproxy.core._{name}_c"):
        load_compiled(name)


@pytest.mark.parametrize(
    "line",
    [
        "from ccproxy.core.stream import StreamTranslator",
        "from ccproxy.core._stream_c import StreamTranslator",
        "from ccproxy.core import stream",
        "from ccproxy.core import _stream_py",
        "from ._stream_py import StreamTranslator",
        "import ccproxy.core._stream_py",
    ],
)
def test_a_sibling_import_that_breaks_the_rule_stops_the_build(line: str) -> None:
    with pytest.raises(ValueError, match=r"line 2: "):
        twins.compiled_source("relay", f'"""Doc."""\n{line}\n'.encode())


def test_the_sibling_import_the_rule_wants_builds() -> None:
    compiled = twins.compiled_source("relay", b"from ccproxy.core._stream_py import StreamTranslator\n")
    assert compiled.startswith("from ccproxy.core._stream_c import StreamTranslator\n")


# ------------------------------------------------------------------------------------------ stale builds


def test_a_twin_older_than_its_source_is_refused_naming_it_and_the_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not twins.REQUESTED:
        pytest.skip("CCPROXY_ENABLE_CYTHON=false: the compiled core is switched off on purpose")
    edited = tmp_path / "_sse_py.py"
    edited.write_bytes(twins.source_path("sse").read_bytes() + b"# edited after the build\n")
    monkeypatch.setattr(twins, "compiled_from", lambda name: edited)
    with pytest.raises(CompiledCoreError) as refused:
        load_compiled("sse")
    message = str(refused.value)
    assert "ccproxy/core/_sse_py.py changed after ccproxy.core._sse_c was built" in message
    assert "python setup.py build_ext --inplace" in message and "CCPROXY_ENABLE_CYTHON=false" in message


def copy_of_ccproxy(tmp_path: Path) -> Path:
    """The installed ccproxy package (with its compiled twins) copied to run against, so the checkout stays as is."""
    shutil.copytree(CORE_DIR.parent, tmp_path / "ccproxy", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "ccproxy" / "core"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_in(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OPENROUTER_", "CCPROXY_"))}
    clean.update({"CCPROXY_ENV_FILE": str(tmp_path / "none.env"), "OPENAI_API_KEY": "sk-test", **env})
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=120)


def require_compiled() -> None:
    if not twins.REQUESTED:
        pytest.skip("CCPROXY_ENABLE_CYTHON=false: the compiled core is switched off on purpose")
    if not all(twins._built(name) for name in COMPILED_MODULES):
        pytest.fail(f"the compiled core is not built; {twins.REBUILD_HINT}")


def test_serve_with_a_stale_twin_stops_with_one_line(tmp_path: Path) -> None:
    require_compiled()
    core_dir = copy_of_ccproxy(tmp_path)
    for name in ("stream", "sse"):
        with (core_dir / f"_{name}_py.py").open("a", encoding="utf-8") as source:
            source.write("# edited after the build\n")
    result = run_in(tmp_path, "-m", "ccproxy", "serve", "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(
        "ccproxy: the compiled core is stale: ccproxy/core/_sse_py.py, ccproxy/core/_stream_py.py changed after "
        "ccproxy.core._sse_c, ccproxy.core._stream_c were built"
    )
    assert "build_ext --inplace" in lines[0]
    # Switched off on purpose, the same checkout runs the pure core.
    pure = run_in(tmp_path, "-c", IMPLEMENTATION, CCPROXY_ENABLE_CYTHON="false")
    assert pure.stdout.split() == EXPECTED["python"], pure.stderr


def test_serve_with_a_partial_build_stops_with_one_line(tmp_path: Path) -> None:
    require_compiled()
    core_dir = copy_of_ccproxy(tmp_path)
    for path in core_dir.glob("_sse_c.*"):
        path.unlink()
    result = run_in(tmp_path, "-m", "ccproxy", "serve", "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    assert "the compiled core is incomplete: ccproxy.core._sse_c not built" in result.stderr
    assert "Traceback" not in result.stderr


# What a fresh process runs: the core's name, the twins (py or c) the facades' functions and classes come from, and
# how many compiled twins were imported at all.
IMPLEMENTATION = """
import importlib, sys
from ccproxy.core import implementation_name
from ccproxy.core._twins import COMPILED_MODULES
flavours = set()
for name in COMPILED_MODULES:
    facade = importlib.import_module(f"ccproxy.core.{name}")
    for attr in importlib.import_module(f"ccproxy.core._{name}_py").__all__:
        if callable(value := getattr(facade, attr)):
            flavours.add(value.__module__.rpartition("_")[2])
loaded = [module for module in sys.modules if module.startswith("ccproxy.core._") and module.endswith("_c")]
print(implementation_name(), *sorted(flavours), len(loaded))
"""
EXPECTED = {"python": ["python", "py", "0"], "cython": ["cython", "c", str(len(COMPILED_MODULES))]}


def test_an_unbuilt_core_runs_the_pure_twins_with_a_warning(tmp_path: Path) -> None:
    core_dir = copy_of_ccproxy(tmp_path)
    for name in COMPILED_MODULES:
        for path in core_dir.glob(f"_{name}_c.*"):
            path.unlink()
    result = run_in(tmp_path, "-c", IMPLEMENTATION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == EXPECTED["python"], result.stderr
    assert "the compiled core is not built; running the pure-Python core" in result.stderr


@pytest.mark.parametrize(("switch", "expected"), [("false", EXPECTED["python"]), ("true", EXPECTED["cython"])])
def test_the_switch_picks_the_twin_every_facade_exports(switch: str, expected: list[str]) -> None:
    if switch == "true":
        require_compiled()
    env = {k: v for k, v in os.environ.items() if k != "CCPROXY_ENABLE_CYTHON"}
    result = subprocess.run(
        [sys.executable, "-c", IMPLEMENTATION],
        env={**env, "CCPROXY_ENABLE_CYTHON": switch},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == expected, result.stderr


def test_this_process_runs_the_core_it_was_asked_for() -> None:
    assert implementation_name() == ("cython" if twins.REQUESTED else "python")


def test_switch_parsing() -> None:
    assert twins.cython_requested({}) is True
    assert twins.cython_requested({"CCPROXY_ENABLE_CYTHON": "false"}) is False
    assert twins.cython_requested({"CCPROXY_ENABLE_CYTHON": " Off "}) is False
    assert twins.cython_requested({"CCPROXY_ENABLE_CYTHON": "0"}) is False
    assert twins.cython_requested({"CCPROXY_ENABLE_CYTHON": "true"}) is True
