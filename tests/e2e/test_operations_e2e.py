"""Operating the real proxy: client keys and budgets through the SDK, JSON usage logs, Prometheus across workers."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccproxy.keys import key_id
from tests.support.fake_openai import COMPLETION_TOKENS, PROMPT_TOKENS
from tests.support.proxy_process import FakeUpstream, ProxyServer, start_proxy
from tests.test_cli import assert_one_line_error, run_ccproxy

pytestmark = pytest.mark.e2e

KEY_A = "ck-e2e-team-a-0123456789abcdef"
KEY_B = "ck-e2e-team-b-fedcba9876543210"
ADMIN = "admin-e2e-0123456789abcdef01"
SONNET = "claude-sonnet-5"
BIG_MODEL = "gpt-5"  # what the e2e proxies map Sonnet to (tests/e2e/conftest.py)
SMALL_MODEL = "gpt-4o-mini"
# gpt-5 at $1.25 / M input and $10 / M output: what one fake-upstream answer costs.
ONE_ANSWER_USD = (PROMPT_TOKENS * 1.25 + COMPLETION_TOKENS * 10.0) / 1e6


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def ops_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ops")


@pytest.fixture(scope="module")
def keyed(ops_dir: Path, fake_upstream: FakeUpstream) -> Iterator[ProxyServer]:
    """A proxy with client keys (one with a budget of about one answer), an admin key and JSON logs to files."""
    config = ops_dir / "plugins.toml"
    config.write_text(
        '[[auth.keys]]\nkey = {"$env" = "TEAM_B_KEY"}\nname = "team-b"\n'
        f'budget_usd = {ONE_ANSWER_USD * 1.5}\nbudget_period = "month"\n'
    )
    server = start_proxy(
        ops_dir,
        upstream=fake_upstream,
        api_key=str(fake_upstream.api_key),
        big_model=BIG_MODEL,
        small_model=SMALL_MODEL,
        log_level="DEBUG",
        config_path=config,
        extra_env={
            "CCPROXY_API_KEYS": KEY_A,
            "TEAM_B_KEY": KEY_B,
            "CCPROXY_ADMIN_KEY": ADMIN,
            "LOG_FORMAT": "json",
            "LOG_FILE_PATH": str(ops_dir / "log.jsonl"),
            "ERROR_LOG_FILE_PATH": str(ops_dir / "error.jsonl"),
        },
        name="proxy-ops",
    )
    yield server
    server.stop_and_check()


def sdk(proxy: ProxyServer, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.base_url, api_key=key, max_retries=0, timeout=30.0)


def usage_records(ops_dir: Path, expected: set[str]) -> dict[str, dict[str, Any]]:
    """The usage log records in log.jsonl, by request id (every line must be JSON), once the expected ones are in.

    The log handler writes its batch on the next turn of the server's loop, which may come after the client has its
    answer: wait a little for the records, never for ever."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in (ops_dir / "log.jsonl").read_text().splitlines()]
        records = {line["request_id"]: line for line in lines if line["logger"] == "ccproxy.usage"}
        if expected <= records.keys() or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def test_a_request_without_a_valid_key_is_refused(keyed: ProxyServer) -> None:
    with sdk(keyed, "ck-not-a-configured-key-000000") as client, pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=SONNET, max_tokens=16, messages=user("hello"))
    body = {"model": SONNET, "max_tokens": 16, "messages": user("hello")}
    bare = httpx.post(keyed.base_url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert bare.status_code == 401 and bare.json()["error"]["type"] == "authentication_error"
    with urllib.request.urlopen(keyed.base_url + "/", timeout=10) as health:
        assert json.loads(health.read())["status"] == "ok"


def test_a_key_over_its_budget_gets_rate_limit_errors(keyed: ProxyServer) -> None:
    with sdk(keyed, KEY_B) as client:
        client.messages.create(model=SONNET, max_tokens=16, messages=user("one"))
        client.messages.create(model=SONNET, max_tokens=16, messages=user("two"))  # within, until counted
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(model=SONNET, max_tokens=16, messages=user("three"))
    assert "team-b" in str(caught.value) and "budget" in str(caught.value)
    assert int(caught.value.response.headers["retry-after"]) > 0
    with sdk(keyed, KEY_A) as client:  # another key is unaffected
        assert client.messages.create(model=SONNET, max_tokens=16, messages=user("four")).content


def test_every_kind_of_request_leaves_one_json_record_with_tokens_and_cost(keyed: ProxyServer, ops_dir: Path) -> None:
    ids: dict[str, str] = {}
    with sdk(keyed, KEY_A) as client:
        answer = client.messages.with_raw_response.create(model=SONNET, max_tokens=16, messages=user("plain"))
        ids["plain"] = answer.headers["request-id"]
        with client.messages.with_streaming_response.create(
            model=SONNET, max_tokens=16, messages=user("streamed"), stream=True
        ) as streamed:
            ids["stream"] = streamed.headers["request-id"]
            streamed.read()
        counted = client.messages.with_raw_response.count_tokens(model=SONNET, messages=user("count"))
        ids["count"] = counted.headers["request-id"]
        with pytest.raises(anthropic.InternalServerError) as failed:
            client.messages.create(model=SONNET, max_tokens=16, messages=user("FAIL_500"))
        ids["failed"] = failed.value.response.headers["request-id"]
    headers = {"x-api-key": KEY_A, "content-type": "application/json", "anthropic-version": "2023-06-01"}
    invalid = httpx.post(keyed.base_url + "/v1/messages", content=b"{not json", headers=headers, timeout=10)
    assert invalid.status_code == 400
    ids["invalid"] = invalid.headers["request-id"]
    records = usage_records(ops_dir, set(ids.values()))
    for kind, request_id in ids.items():
        assert request_id in records, f"no usage record for the {kind} request"
    assert list(records).count(ids["plain"]) == 1
    for kind in ("plain", "stream"):
        line = records[ids[kind]]
        assert (line["input_tokens"], line["output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS), line
        assert line["cost_usd"] == pytest.approx(ONE_ANSWER_USD) and line["key_id"] == key_id(KEY_A)
        assert line["upstream_model"] == BIG_MODEL and line["status"] == 200 and line["level"] == "INFO"
    assert records[ids["stream"]]["stream"] is True and records[ids["stream"]]["ttft_ms"] > 0
    assert records[ids["count"]]["endpoint"] == "count_tokens"
    assert (records[ids["failed"]]["status"], records[ids["failed"]]["error_type"]) == (500, "api_error")
    assert records[ids["invalid"]]["status"] == 400
    errors = [json.loads(line) for line in (ops_dir / "error.jsonl").read_text().splitlines()]
    assert any(line.get("request_id") == ids["failed"] for line in errors)
    assert all(line["level"] in ("WARNING", "ERROR", "CRITICAL") for line in errors)


def test_usage_on_loopback_needs_the_admin_key_and_sums_per_key(keyed: ProxyServer) -> None:
    refused = httpx.get(keyed.base_url + "/v1/usage", headers={"x-api-key": KEY_A}, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    usage = httpx.get(keyed.base_url + "/v1/usage", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10).json()
    assert usage["by_key"][key_id(KEY_B)]["name"] == "team-b"
    assert usage["by_key"][key_id(KEY_B)]["requests"] == 2  # the refused third never reached the pipeline
    assert usage["by_key"][key_id(KEY_A)]["cost_usd"] > 0


# Last of the keyed proxy's tests on purpose: by now its logs hold every kind of request made above.
def test_no_key_appears_in_any_log_line(keyed: ProxyServer, ops_dir: Path) -> None:
    logs = {
        "stderr": keyed.process.log_text(),
        "log.jsonl": (ops_dir / "log.jsonl").read_text(),
        "error.jsonl": (ops_dir / "error.jsonl").read_text(),
    }
    assert logs["log.jsonl"].count("\n") > 10
    for name, text in logs.items():
        for secret in (KEY_A, KEY_B, ADMIN, keyed.api_key):
            assert secret not in text, f"{name} holds a key"
            assert secret[-12:] not in text, f"{name} holds the end of a key"
    for line in logs["stderr"].splitlines():  # LOG_FORMAT=json: nothing else on stderr, Sanic's lines included
        json.loads(line)


# ----------------------------------------------------------------------------------------------- two workers


def prometheus_totals(base_url: str) -> dict[str, float]:
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("ccproxy_requests_total", "ccproxy_tokens_total", "ccproxy_requests_in_flight"):
                key = sample.name + ("" if "kind" not in sample.labels else ":" + sample.labels["kind"])
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def test_prometheus_usage_and_the_json_summary_count_every_request_of_two_workers(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    server = start_proxy(
        tmp_path,
        upstream=fake_upstream,
        api_key=str(fake_upstream.api_key),
        big_model=BIG_MODEL,
        small_model=SMALL_MODEL,
        workers=2,
        extra_env={"LOG_FORMAT": "json"},
        name="proxy-two-workers",
    )
    try:
        sent = 0
        pids: set[int] = set()
        while sent < 200 and (sent < 40 or len(pids) < 2):  # until both workers have served some
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda n: one_request(server, n), range(sent, sent + 20)))
            sent += 20
            pids = usage_pids(server)
        assert len(pids) == 2, f"one worker served all {sent} requests"
        expected = {
            "ccproxy_requests_total": sent,
            "ccproxy_tokens_total:input": sent * PROMPT_TOKENS,
            "ccproxy_tokens_total:output": sent * COMPLETION_TOKENS,
            "ccproxy_requests_in_flight": 0,
        }
        deadline = time.monotonic() + 10
        while True:
            # The other worker's sums reach the scrape within a second. A worker writes its series one after the
            # other, so a scrape taken while it writes (or while it is descheduled halfway, on a busy machine) may
            # hold its new request count beside its old token counts: every total is waited for, not only the first.
            totals = prometheus_totals(server.base_url)
            if all(totals.get(name) == value for name, value in expected.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert {name: totals.get(name) for name in expected} == expected
        # GET /v1/usage too sums both workers (their files), whichever of them answers.
        deadline = time.monotonic() + 10
        while True:
            usage = httpx.get(server.base_url + "/v1/usage", headers={"connection": "close"}, timeout=30).json()
            if usage["totals"]["requests"] == sent or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert usage["scope"] == "server"
        assert usage["totals"]["requests"] == sent and usage["totals"]["input_tokens"] == sent * PROMPT_TOKENS
        # And GET /v1/metrics's summary: every worker's requests, percentiles over both workers' recent ones.
        deadline = time.monotonic() + 10
        while True:
            summary = httpx.get(server.base_url + "/v1/metrics", headers={"connection": "close"}, timeout=30).json()
            if summary["requests"] == sent or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert summary["scope"] == "server" and summary["workers"] == 2
        assert summary["requests"] == sent and summary["latency_ms"]["samples"] == sent
        assert summary["tokens"]["input"] == sent * PROMPT_TOKENS and summary["in_flight"] == 0
    finally:
        server.stop_and_check()


def one_request(server: ProxyServer, number: int) -> None:
    # A fresh connection each time (no keep-alive), so the kernel spreads them over both workers.
    body = {"model": SONNET, "max_tokens": 16, "messages": user(f"request {number}")}
    headers = {"x-api-key": "unused", "anthropic-version": "2023-06-01", "connection": "close"}
    response = httpx.post(server.base_url + "/v1/messages", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text


def usage_pids(server: ProxyServer) -> set[int]:
    lines = [json.loads(line) for line in server.process.log_text().splitlines() if line.startswith("{")]
    return {line["pid"] for line in lines if line.get("logger") == "ccproxy.usage"}


# ------------------------------------------------------------------------------------------------ start-up


def test_a_public_address_without_keys_is_refused_at_start(tmp_path: Path) -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "HOST": "0.0.0.0", "LOG_FORMAT": "text"}
    result = run_ccproxy(tmp_path, env)
    assert_one_line_error(result, "HOST: 0.0.0.0 is not a loopback address and no client keys are configured")
    assert "--allow-unauthenticated" in result.stderr
