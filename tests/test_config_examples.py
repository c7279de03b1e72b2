"""The commented [backends] and [routes] examples of the repository's plugins.toml are a configuration that works."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from sanic import Sanic

from ccproxy.app import build_state
from ccproxy.config import parse_config
from ccproxy.routing import Target
from ccproxy.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[1] / "plugins.toml"
# A commented TOML line of the examples: a table header or a key (not prose).
_COMMENTED = re.compile(r"^# (\[[^\]]+\]$|[\w\"*.-]+ = .*$)")


def uncommented_examples() -> str:
    """The [backends.*] and [routes] sections with their commented example lines switched on."""
    lines: list[str] = []
    keep = False
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        header = re.match(r"^(?:# )?\[([^\]]+)\]$", line)
        if header:
            keep = header.group(1).startswith(("backends.", "routes"))
        match = _COMMENTED.match(line)
        if keep and (match or line.startswith("[")):
            lines.append(match.group(1) if match else line)
    return "\n".join(lines) + "\n"


def test_the_commented_backends_and_routes_build_an_app() -> None:
    file = parse_config(tomllib.loads(uncommented_examples()), {"OPENROUTER_KEY": "sk-or-example-0123456789"})
    assert list(file.backends) == ["local", "openrouter"] and len(file.routes) == 3
    settings = Settings(
        api_key="sk-legacy-0123456789",  # the bare "gpt-5" target needs backend "default", the legacy variables'
        legacy_configured=True,
        backend_tables=file.backends,
        routes=tuple(file.routes.items()),
    )
    Sanic.test_mode = True
    state = build_state(settings)
    assert list(state.backends) == ["default", "local", "openrouter"]
    assert state.router.resolve("claude-opus-4-8").targets == (
        Target("openrouter", "anthropic/claude-opus-4.5"),
        Target("local", "qwen3-coder"),
    )
    assert state.router.resolve("claude-sonnet-5").targets == (Target("default", "gpt-5"),)
    openrouter = state.backends["openrouter"]
    assert openrouter.config.rpm == 0 and openrouter.config.retries == 2
    assert openrouter.capabilities("anthropic/claude-opus-4.5").max_output_tokens == 32000
    assert openrouter.provider.headers()["X-Title"] == "ccproxy"
    converted = openrouter.provider.adjust_request({}, {})
    assert converted["provider"] == {
        "order": ["Anthropic", "Amazon Bedrock"],
        "allow_fallbacks": True,
        "data_collection": "deny",
    }
