"""`ccproxy plugins`: installed plugins with versions and what each registers, through the real console script."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CCPROXY = str(Path(sys.executable).with_name("ccproxy"))  # the console script of the installed distribution


def run_plugins(tmp_path: Path, *args: str, config: str | None = None) -> subprocess.CompletedProcess[str]:
    # No upstream key at all: listing plugins must not need one.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OPENROUTER_", "CCPROXY_"))}
    env["CCPROXY_ENV_FILE"] = str(tmp_path / "none.env")
    command = [CCPROXY, "plugins", *args]
    if config is not None:
        (tmp_path / "plugins.toml").write_text(config)
        command += ["--config", str(tmp_path / "plugins.toml")]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def listing(tmp_path: Path, config: str | None = None) -> dict[str, Any]:
    result = run_plugins(tmp_path, "--json", config=config)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def by_name(parsed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {plugin["name"]: plugin for plugin in parsed["plugins"]}


def test_json_lists_built_ins_and_entry_points_with_versions(tmp_path: Path) -> None:
    plugins = by_name(listing(tmp_path))
    server = importlib.metadata.version("ccproxy-server")
    assert plugins["ccproxy.memory_cache"] == {
        "name": "ccproxy.memory_cache",
        "builtin": True,
        "distribution": "ccproxy-server",
        "version": server,
        "hooks": ["ccproxy_register_cache_backends"],
        "registered": {"cache_backends": ["memory"]},
    }
    assert plugins["ccproxy.reasoning"]["registered"] == {"reasoning_configurators": ["budget-effort"]}
    openai = plugins["openai"]
    assert (openai["builtin"], openai["distribution"]) == (False, "ccproxy-openai")
    assert openai["version"] == importlib.metadata.version("ccproxy-openai")
    assert openai["hooks"] == ["ccproxy_register_providers"] and openai["registered"] == {"providers": ["openai"]}
    assert list(plugins)[:3] == ["ccproxy.memory_cache", "ccproxy.reasoning", "ccproxy.guardrails"]


def test_registrations_follow_the_config_and_disabled_plugins_are_listed(tmp_path: Path) -> None:
    config = '[ccproxy]\ndisabled_plugins = ["ccproxy.memory_cache"]\n[guardrails]\nallowed_models = ["claude-*"]\n'
    parsed = listing(tmp_path, config)
    plugins = by_name(parsed)
    assert "ccproxy.memory_cache" not in plugins
    assert parsed["disabled"] == ["ccproxy.memory_cache"]
    assert plugins["ccproxy.guardrails"]["registered"] == {"guardrails": ["allowed_models"]}


def test_text_output_is_readable(tmp_path: Path) -> None:
    result = run_plugins(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    server = importlib.metadata.version("ccproxy-server")
    assert f"ccproxy.memory_cache (built-in, ccproxy-server {server})" in lines
    assert "  cache backends: memory" in lines
    assert f"openai (entry point, ccproxy-openai {importlib.metadata.version('ccproxy-openai')})" in lines
    assert "  hooks: ccproxy_register_providers" in lines
    assert "  providers: openai" in lines


def test_a_config_error_is_one_line(tmp_path: Path) -> None:
    result = run_plugins(tmp_path, config="[ccproxy]\nnope = 1\n")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "ccproxy.nope" in result.stderr
    assert "Traceback" not in result.stderr
