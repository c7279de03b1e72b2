"""The launcher's pure parts (ccproxy/launcher.py): where it connects, the error line it quotes, the environment it
gives Claude Code, the status it prints."""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy import launcher
from ccproxy.launcher import PLACEHOLDER_KEY, Address, claude_env, client_key, first_error_line, render_status
from ccproxy.settings import Settings

STATUS: dict[str, Any] = {
    "version": "0.1.0",
    "pid": 42,
    "workers": 2,
    "core": "cython",
    "uptime_seconds": 61.2,
    "in_flight": 3,
    "routes": [{"pattern": "*haiku*", "targets": ["default:gpt-5-mini"]}, {"pattern": None, "targets": ["a:b"]}],
    "backends": {
        "default": {
            "provider": "openai",
            "base_url": "http://u/v1/chat/completions",
            "breaker": None,
            "max_connections": 0,
        },
    },
}


TOTALS = {
    "requests": 12,
    "errors": 1,
    "input_tokens": 3400,
    "output_tokens": 560,
    "cost_usd": 0.123456,
    "unpriced_requests": 0,
}


def test_a_wildcard_bind_is_reached_on_loopback() -> None:
    assert Address.of(Settings(host="0.0.0.0", port=9000)).url == "http://127.0.0.1:9000"
    assert Address.of(Settings(host="::", port=9000)).url == "http://[::1]:9000"
    assert Address.of(Settings(host="10.0.0.5", port=80)).url == "http://10.0.0.5:80"


def test_the_quoted_line_is_the_first_error_or_a_tracebacks_last_line() -> None:
    assert first_error_line("starting\nccproxy: configuration error: PORT: in use\nbye\n") == (
        "ccproxy: configuration error: PORT: in use"
    )
    crash = "Traceback (most recent call last):\n  File x\nRuntimeError: boom\n"
    assert first_error_line(crash) == "RuntimeError: boom"
    assert first_error_line("") == "(no output)"
    assert first_error_line("one\ntwo\n") == "two"


def test_claude_gets_the_proxy_and_a_key_and_no_auth_token() -> None:
    env = claude_env({"PATH": "/bin", "ANTHROPIC_AUTH_TOKEN": "t"}, Address("127.0.0.1", 11434), None)
    assert env == {"PATH": "/bin", "ANTHROPIC_BASE_URL": "http://127.0.0.1:11434", "ANTHROPIC_API_KEY": PLACEHOLDER_KEY}
    keyed = Settings(api_keys=("ck-first-0123456789abcdef", "ck-second-0123456789abcd"))
    assert client_key(keyed) == "ck-first-0123456789abcdef"
    assert client_key(Settings(auth_options={"keys": [{"key": "ck-table-0123456789abcdef"}]})) == (
        "ck-table-0123456789abcdef"
    )


def test_the_status_text_names_routes_and_backends() -> None:
    text = render_status(Address("127.0.0.1", 11434), STATUS)
    assert "ccproxy 0.1.0 on http://127.0.0.1:11434: pid 42, 2 worker(s)" in text
    assert "*haiku*" in text and "(direct)" in text
    assert "breaker unknown, connections unlimited" in text
    assert "today" not in text  # no usage totals: the usage plugin is off, or the proxy did not give them


def test_the_status_text_says_what_today_cost() -> None:
    today = {
        "day": "2026-11-30",
        "scope": "fleet",
        "requests": 12,
        "errors": 1,
        "input_tokens": 3400,
        "output_tokens": 560,
        "cost_usd": 0.123456,
        "unpriced_requests": 2,
    }
    text = render_status(Address("127.0.0.1", 11434), {**STATUS, "usage_today": today})
    assert (
        "today (2026-11-30 UTC, fleet): 12 request(s), 1 error(s), 3400 input and 560 output tokens, $0.1235, "
        "2 without a price"
    ) in text


@pytest.mark.parametrize(
    "answer",
    [
        None,
        {"type": "error", "error": {"type": "permission_error", "message": "no"}},
        {"object": "usage", "totals": {}},
        {"object": "usage", "totals": {"requests": 1, "errors": 0, "input_tokens": 1, "output_tokens": 1}},
        {"object": "usage", "totals": {**TOTALS, "cost_usd": None}},
        {"object": "usage", "totals": {**TOTALS, "requests": "12"}},
    ],
)
def test_status_shows_no_usage_line_for_an_answer_it_cannot_read(answer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "get_json", lambda *args, **kwargs: answer)
    assert launcher.usage_today(Address("127.0.0.1", 11434), {}) is None


def test_status_reads_todays_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def get_json(url: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(url)
        return {"object": "usage", "scope": "server", "totals": TOTALS}

    monkeypatch.setattr(launcher, "get_json", get_json)
    today = launcher.usage_today(Address("127.0.0.1", 11434), {"x-api-key": "k"})
    assert today is not None and today["scope"] == "server" and today["requests"] == 12
    assert asked == [f"http://127.0.0.1:11434/v1/usage?day={today['day']}"]
    assert "12 request(s)" in render_status(Address("127.0.0.1", 11434), {**STATUS, "usage_today": today})
