"""tools/check_wheels.py, the wheel check of CI and of the container build, on small wheels made here."""

from __future__ import annotations

import base64
import hashlib
import importlib.machinery
import zipfile
from pathlib import Path

import pytest

from tools import check_wheels

SO = importlib.machinery.EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so


def make_wheel(folder: Path, distribution: str, files: dict[str, str], tag: str = "py3-none-any") -> Path:
    """A minimal valid wheel (METADATA, WHEEL, RECORD) holding `files`, as pip installs it."""
    stem = f"{distribution.replace('-', '_')}-0.1.0"
    info = f"{stem}.dist-info"
    contents = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n",
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    record = []
    for name, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    path = folder / f"{stem}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in contents.items():
            archive.writestr(name, text)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def make_tree(root: Path, plugins: dict[str, str]) -> None:
    """A source tree: ccproxy-server at the root, one folder per plugin (folder -> distribution name)."""
    (root / "pyproject.toml").write_text('[project]\nname = "ccproxy-server"\n')
    for folder, name in plugins.items():
        (root / "plugins" / folder).mkdir(parents=True)
        (root / "plugins" / folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n')


def test_every_plugin_folder_with_a_pyproject_is_a_distribution(tmp_path: Path) -> None:
    make_tree(tmp_path, {"ccproxy-openai": "ccproxy-openai", "ccproxy-redis": "ccproxy-redis"})
    (tmp_path / "plugins" / "notes").mkdir()  # no pyproject.toml: not a distribution
    projects = check_wheels.project_dirs(tmp_path)
    assert projects[0] == tmp_path
    names = [check_wheels.distribution_name(p) for p in projects]
    assert names == ["ccproxy-server", "ccproxy-openai", "ccproxy-redis"]


def test_the_repository_lists_the_server_and_the_openai_plugin() -> None:
    names = [check_wheels.distribution_name(p) for p in check_wheels.project_dirs(check_wheels.ROOT)]
    assert names[0] == "ccproxy-server"
    assert "ccproxy-openai" in names


def test_a_missing_or_doubled_wheel_is_named(tmp_path: Path) -> None:
    with pytest.raises(check_wheels.WheelError, match=r"ccproxy-openai: expected one wheel .* found none"):
        check_wheels.find_wheel(tmp_path, "ccproxy-openai")
    make_wheel(tmp_path, "ccproxy-openai", {}, tag="py3-none-any")
    make_wheel(tmp_path, "ccproxy-openai", {}, tag="cp311-cp311-linux_x86_64")
    with pytest.raises(check_wheels.WheelError, match=r"found ccproxy_openai-0\.1\.0-cp311"):
        check_wheels.find_wheel(tmp_path, "ccproxy-openai")


def test_wheel_names_are_matched_in_their_escaped_form(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "ccproxy-openai", {})
    assert check_wheels.find_wheel(tmp_path, "CCProxy.OpenAI") == wheel
    make_wheel(tmp_path, "ccproxy-openai-extra", {})  # another distribution sharing the prefix
    assert check_wheels.find_wheel(tmp_path, "ccproxy-openai") == wheel


def test_a_server_wheel_with_the_compiled_core_passes(tmp_path: Path) -> None:
    files = {"ccproxy/__init__.py": "", "ccproxy/core/stream.py": "", f"ccproxy/core/_stream_c{SO}": "binary"}
    wheel = make_wheel(tmp_path, "ccproxy-server", files, tag="cp311-cp311-linux_x86_64")
    assert check_wheels.check_server_wheel(wheel) == []


def test_a_server_wheel_without_the_compiled_core_fails(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "ccproxy-server", {"ccproxy/__init__.py": "", "ccproxy/core/stream.py": ""})
    assert check_wheels.check_server_wheel(wheel) == [
        f"{wheel.name}: no compiled core module (ccproxy/core/*.so); was CCPROXY_BUILD_CYTHON false?"
    ]


def test_generated_c_sources_and_an_any_platform_tag_are_refused(tmp_path: Path) -> None:
    files = {f"ccproxy/core/_stream_c{SO}": "binary", "ccproxy/core/stream.c": "/* generated */"}
    wheel = make_wheel(tmp_path, "ccproxy-server", files)
    problems = check_wheels.check_server_wheel(wheel)
    assert problems == [
        f"{wheel.name}: tagged for any platform, but it holds compiled code",
        f"{wheel.name}: ships generated C sources (ccproxy/core/stream.c)",
    ]


def test_top_level_modules_are_packages_and_single_modules_not_metadata(tmp_path: Path) -> None:
    files = {"ccproxy/__init__.py": "", "ccproxy/core/stream.py": "", "sanic_config.py": ""}
    wheel = make_wheel(tmp_path, "ccproxy-server", files)
    assert check_wheels.top_level_modules(wheel) == ["ccproxy", "sanic_config"]


def test_compiled_modules_are_found_by_their_extension_suffix(tmp_path: Path) -> None:
    core = tmp_path / "ccproxy" / "core"
    core.mkdir(parents=True)
    for name in (f"_stream_c{SO}", f"_sse_c{SO}", "stream.py", "stream.c"):
        (core / name).write_text("")
    assert check_wheels.compiled_modules(tmp_path, ["ccproxy", "absent"]) == [
        "ccproxy.core._sse_c",
        "ccproxy.core._stream_c",
    ]


def test_installed_wheels_that_do_not_import_are_reported(tmp_path: Path) -> None:
    """The whole install-and-import check, in a throwaway folder, with a plugin that cannot be imported."""
    make_tree(tmp_path, {"good": "ccproxy-good", "broken": "ccproxy-broken"})
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "ccproxy-server", {f"ccproxy/core/_stream_c{SO}": "", "ccproxy/__init__.py": ""})
    make_wheel(wheels, "ccproxy-good", {"ccproxy_good/__init__.py": "VALUE = 1\n"})
    make_wheel(wheels, "ccproxy-broken", {"ccproxy_broken/__init__.py": "import not_a_module_anywhere\n"})
    problems = check_wheels.check(tmp_path, wheels, with_deps=False)
    # The empty file posing as a compiled module cannot load either: both failures are named, the good plugin is not.
    assert any(p.startswith("import ccproxy_broken: ModuleNotFoundError") for p in problems), problems
    assert any(p.startswith("import ccproxy.core._stream_c: ImportError") for p in problems), problems
    assert not any("ccproxy_good" in p for p in problems), problems


def test_installed_wheels_that_import_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tree(tmp_path, {"good": "ccproxy-good"})
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "ccproxy-server", {"ccproxy_stub/__init__.py": "", "sanic_stub.py": ""})
    entry_points = "[ccproxy]\ngood = ccproxy_good\n"
    files = {"ccproxy_good/__init__.py": "VALUE = 1\n", "ccproxy_good-0.1.0.dist-info/entry_points.txt": entry_points}
    make_wheel(wheels, "ccproxy-good", files)
    problems = check_wheels.check(tmp_path, wheels, with_deps=False)
    # Only the server wheel's own content is wrong here (no compiled core); everything imports.
    server = check_wheels.find_wheel(wheels, "ccproxy-server").name
    assert problems == [f"{server}: no compiled core module (ccproxy/core/*.so); was CCPROXY_BUILD_CYTHON false?"]
    summary = "imported ccproxy_good, ccproxy_stub, sanic_stub; 0 compiled modules; entry points good"
    assert summary in capsys.readouterr().out
