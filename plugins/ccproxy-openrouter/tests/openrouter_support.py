"""Shared by the OpenRouter plugin tests: the fake OpenRouter process handle and the proxy configuration."""

from __future__ import annotations

import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.proxy_process import (
    REPO_ROOT,
    ManagedProcess,
    http_json,
    python_env,
    spawn,
    wait_until,
)

FAKE = Path(__file__).resolve().parent / "fake_openrouter.py"
# Unique per run: found in a response or a log, it can only mean the proxy leaked it.
OPENROUTER_KEY = "sk-or-v1-" + secrets.token_hex(24)
MODEL = "anthropic/claude-sonnet-4.5"
PREFERENCES = {"order": ["Anthropic", "Amazon Bedrock"], "allow_fallbacks": False, "data_collection": "deny"}


@dataclass
class FakeOpenRouter:
    """Handle on a running fake_openrouter.py."""

    process: ManagedProcess
    port: int

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict[str, Any]]:
        return list(http_json(f"{self.root}/_requests")["requests"])

    def reset(self) -> None:
        http_json(f"{self.root}/_reset", method="POST", body={})

    def summary(self) -> str:
        return "\n".join(f"{r['status']} {r['body'].get('model')} {r['error']!r}" for r in self.requests())


def start_fake_openrouter(log_dir: Path) -> FakeOpenRouter:
    argv = [sys.executable, str(FAKE), "--port", "0", "--api-key", OPENROUTER_KEY]
    process = spawn("fake_openrouter", argv, log_dir / "fake_openrouter.log", python_env(), REPO_ROOT)
    found: list[int] = []

    def port_printed() -> bool:
        match = re.search(r"^PORT=(\d+)$", process.log_text(), re.MULTILINE)
        if match:
            found.append(int(match.group(1)))
        return bool(match)

    wait_until(process, port_printed, "print its port")
    return FakeOpenRouter(process, found[0])


def proxy_config(fake: FakeOpenRouter) -> str:
    """An `openrouter` backend (key from its table, routing preferences) and routes to it."""
    order = ", ".join(f'"{name}"' for name in PREFERENCES["order"])
    return f"""
[backends.openrouter]
provider = "openrouter"
base_url = "{fake.root}/api/v1"
api_key = {{"$env" = "FAKE_OPENROUTER_KEY"}}
title = "ccproxy tests"

[backends.openrouter.provider_preferences]
order = [{order}]
allow_fallbacks = false
data_collection = "deny"

[routes]
"claude-json-cost" = "openrouter:{MODEL}:json"
"claude-stream-cost" = "openrouter:{MODEL}:stream"
"claude-ignored-stream-cost" = "openrouter:{MODEL}:ignored"
"claude-byok-cost" = "openrouter:{MODEL}:byok"
"claude-gpt" = "openrouter:openai/gpt-5"
"claude-*" = "openrouter:{MODEL}"
"""
