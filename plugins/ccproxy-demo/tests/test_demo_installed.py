"""The demo plugin as users install it: found through packaging metadata, and chosen only explicitly."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import ccproxy_demo
from ccproxy.app import build_state
from ccproxy.backends import select_provider
from ccproxy.cli import demo_settings
from ccproxy.plugins import build_plugin_manager, collect
from ccproxy.settings import Settings, SettingsError, load_settings
from ccproxy_demo import DemoProvider
from tests.support.proxy_process import python_env


def test_entry_point_is_installed() -> None:
    found = [ep for ep in entry_points(group="ccproxy") if ep.name == "demo"]
    assert len(found) == 1
    assert found[0].load() is ccproxy_demo
    assert found[0].dist is not None and found[0].dist.name == "ccproxy-demo"


def test_installed_it_is_registered_but_never_chosen_silently(tmp_path: Path) -> None:
    settings = Settings(api_key="sk-test-0123456789")
    assert collect(build_plugin_manager(settings), settings).providers["demo"] is DemoProvider
    # Nothing configured and no key: the OpenAI default still asks for its key; the demo does not step in.
    empty = tmp_path / "plugins.toml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(SettingsError, match="OPENAI_API_KEY"):
        build_state(load_settings({}, config_path=empty))


def test_demo_settings_route_every_model_to_the_demo_backend_with_no_key(tmp_path: Path) -> None:
    empty = tmp_path / "plugins.toml"
    empty.write_text("", encoding="utf-8")
    settings = load_settings({}, config_path=empty, **demo_settings())
    assert {name: table.provider for name, table in settings.backend_tables.items()} == {"demo": "demo"}
    assert settings.routes == (("*", "demo:demo"),)


def test_ccproxy_plugins_lists_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ccproxy", "plugins", "--json"],
        cwd=tmp_path,
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert '"demo"' in done.stdout and "ccproxy-demo" in done.stdout


def test_without_the_plugin_the_demo_backend_says_what_to_install() -> None:
    demo = demo_settings()["backend_tables"]["demo"]
    with pytest.raises(SettingsError, match=r"'demo' is not installed \(pip install ccproxy-demo\); installed"):
        select_provider({}, demo)
