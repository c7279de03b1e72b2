"""Routes and fallback end to end: the real proxy in front of several fake upstreams run as processes — one down
(nothing listening), one answering 503, one slower than its timeout, one healthy — configured by [backends] and
[routes] alone (no legacy variable, no key: every backend is on a local address)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.support.proxy_process import (
    FakeUpstream,
    ProxyServer,
    free_port,
    http_json,
    serve_until_exit,
    start_configured_proxy,
    start_fake_openai,
)

pytestmark = pytest.mark.e2e

SLOW_SECONDS = 5
HELLO: dict[str, Any] = {"max_tokens": 64, "messages": [{"role": "user", "content": "Say hello"}]}


@dataclass
class Fleet:
    good: FakeUpstream
    busy: FakeUpstream
    slow: FakeUpstream
    aux: FakeUpstream  # scripted per test with set_mode
    down_port: int

    def all(self) -> list[FakeUpstream]:
        return [self.good, self.busy, self.slow, self.aux]


def fleet_config(fleet: Fleet) -> str:
    """Backends on the fleet, and routes exercising them."""
    return f"""
[backends.down]
provider = "openai"
base_url = "http://127.0.0.1:{fleet.down_port}/v1"
retries = 1

[backends.busy]
provider = "openai"
base_url = "{fleet.busy.base_url}"
retries = 1

[backends.slow]
provider = "openai"
base_url = "{fleet.slow.base_url}"
request_timeout = 1
retries = 0

[backends.good]
provider = "openai"
base_url = "{fleet.good.base_url}"

[backends.flaky]
provider = "openai"
base_url = "{fleet.aux.base_url}"
retries = 2

[backends.tripping]
provider = "openai"
base_url = "{fleet.aux.base_url}"
retries = 0
breaker_failures = 2
breaker_cooldown = 1

[backends.limited]
provider = "openai"
base_url = "{fleet.good.base_url}"
retries = 0
rpm = 2
limit_wait = 0

[routes]
"claude-opus-*" = ["down:gpt-5", "busy:gpt-5", "slow:gpt-5", "good:gpt-4o-mini"]
"retry-*" = "flaky:gpt-5"
"trip-*" = ["tripping:gpt-5", "good:gpt-4o-mini"]
"burst-*" = ["limited:gpt-5", "good:gpt-4o-mini"]
"claude-*" = "good:gpt-4o-mini"
"""


@pytest.fixture(scope="module")
def fleet(e2e_logs: Path) -> Iterator[Fleet]:
    started = [
        start_fake_openai(e2e_logs, name="fake-good"),
        start_fake_openai(e2e_logs, name="fake-busy", extra_args=["--fail-status", "503"]),
        start_fake_openai(e2e_logs, name="fake-slow", extra_args=["--delay", str(SLOW_SECONDS)]),
        start_fake_openai(e2e_logs, name="fake-aux"),
    ]
    yield Fleet(*started, down_port=free_port())
    for fake in started:
        fake.process.stop()


@pytest.fixture(scope="module")
def routed(e2e_logs: Path, fleet: Fleet) -> Iterator[ProxyServer]:
    config = e2e_logs / "backends.toml"
    config.write_text(fleet_config(fleet), encoding="utf-8")
    server = start_configured_proxy(e2e_logs, config, name="proxy-backends")
    yield server
    server.stop_and_check()


@pytest.fixture(scope="module")
def sdk(routed: ProxyServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=routed.base_url, api_key="dummy", max_retries=0, timeout=60.0) as client:
        yield client


@pytest.fixture
def clean(fleet: Fleet) -> Fleet:
    for fake in fleet.all():
        fake.reset()
    fleet.aux.set_mode()
    return fleet


def create(sdk: anthropic.Anthropic, model: str, **extra: Any) -> Any:
    return sdk.messages.with_raw_response.create(model=model, **{**HELLO, **extra})


def served_by(raw: Any) -> tuple[str, str]:
    return raw.headers["x-ccproxy-backend"], raw.headers["x-ccproxy-upstream-model"]


def test_down_503_and_slow_backends_are_skipped_and_the_fourth_answers(sdk: anthropic.Anthropic, clean: Fleet) -> None:
    started = time.monotonic()
    raw = create(sdk, "claude-opus-4-8")
    message = raw.parse()
    assert message.content[0].text == "FAKE_OPENAI_REPLY: gpt-4o-mini"
    assert served_by(raw) == ("good", "gpt-4o-mini")
    assert [r["status"] for r in clean.busy.chat_requests()] == [503, 503]  # its retry, then the fallback
    assert len(clean.slow.chat_requests()) == 1  # given up after its 1 s timeout
    assert time.monotonic() - started < SLOW_SECONDS  # the slow backend was not waited for
    good = clean.good.last_chat()
    assert good["body"]["model"] == "gpt-4o-mini" and good["body"]["max_tokens"] == 64
    assert "authorization" not in good["headers"]  # a local backend with no key configured sends none


def test_a_stream_falls_back_the_same_way(sdk: anthropic.Anthropic, clean: Fleet) -> None:
    with sdk.messages.with_streaming_response.create(model="claude-opus-4-8", stream=True, **HELLO) as response:
        assert response.headers["x-ccproxy-backend"] == "good"
        text = "".join(
            event.delta.text
            for event in response.parse()
            if event.type == "content_block_delta" and event.delta.type == "text_delta"
        )
    assert text == "FAKE_OPENAI_REPLY: gpt-4o-mini"
    assert clean.good.last_chat()["body"]["stream"] is True


def test_a_retry_after_is_waited_for_on_the_same_backend(sdk: anthropic.Anthropic, clean: Fleet) -> None:
    clean.aux.set_mode(fail_status=503, fail_times=1, retry_after="1")
    started = time.monotonic()
    raw = create(sdk, "retry-1")
    assert served_by(raw) == ("flaky", "gpt-5")
    assert time.monotonic() - started >= 1.0
    assert [r["status"] for r in clean.aux.chat_requests()] == [503, 200]


def test_the_breaker_opens_after_failures_and_one_trial_closes_it(sdk: anthropic.Anthropic, clean: Fleet) -> None:
    clean.aux.set_mode(fail_status=500)
    assert [served_by(create(sdk, "trip-1"))[0] for _ in range(3)] == ["good", "good", "good"]
    assert len(clean.aux.chat_requests()) == 2  # the third request skipped the open circuit
    clean.aux.set_mode()
    time.sleep(1.1)  # breaker_cooldown
    assert [served_by(create(sdk, "trip-1"))[0] for _ in range(2)] == ["tripping", "tripping"]
    assert len(clean.aux.chat_requests()) == 4


def test_the_rate_limit_shapes_a_burst(sdk: anthropic.Anthropic, clean: Fleet) -> None:
    with ThreadPoolExecutor(5) as pool:
        served = list(pool.map(lambda i: served_by(create(sdk, f"burst-{i}"))[0], range(5)))
    assert sorted(served) == ["good", "good", "good", "limited", "limited"]  # rpm = 2 for limited


def test_a_direct_backend_model_request_and_an_unknown_backend(sdk: anthropic.Anthropic, clean: Fleet) -> None:
    raw = create(sdk, "good:o4-mini")
    assert served_by(raw) == ("good", "o4-mini") and clean.good.last_chat()["body"]["model"] == "o4-mini"
    with pytest.raises(anthropic.BadRequestError) as info:
        create(sdk, "nope,gpt-5")
    assert "configured: busy, down, flaky, good, limited, slow, tripping" in info.value.message


def test_models_lists_routes_and_each_backends_models(routed: ProxyServer, clean: Fleet) -> None:
    listing = http_json(routed.base_url + "/v1/models")
    ids = [entry["id"] for entry in listing["data"]]
    assert "claude-opus-4-8" in ids and "good:gpt-4o-mini" in ids and "busy:o4-mini" in ids
    assert "down:gpt-5" not in ids  # nothing listens there: listed as nothing, not fatal
    opus = next(entry for entry in listing["data"] if entry["id"] == "claude-opus-4-8")
    assert opus["display_name"] == "claude-opus-4-8 (via down:gpt-5 -> busy:gpt-5 -> slow:gpt-5 -> good:gpt-4o-mini)"
    assert listing["ccproxy"]["backends"]["good"] == {"provider": "openai", "base_url": clean.good.base_url}


def test_the_start_up_log_names_every_backend(routed: ProxyServer, fleet: Fleet) -> None:
    log = routed.process.log_text()
    assert "7 backend(s)" in log
    assert f"backend busy: provider openai, upstream {fleet.busy.base_url}/chat/completions" in log


def test_a_config_error_stops_start_up_naming_the_table_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[backends.local]\nprovider = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nrpm = "ten"\n')
    done = serve_until_exit(config, tmp_path)
    assert done.returncode != 0
    assert "backends.local.rpm: expected an integer >= 0, got 'ten'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_public_backend_without_its_key_stops_start_up(tmp_path: Path) -> None:
    config = tmp_path / "keyless.toml"
    config.write_text('[backends.openai]\nprovider = "openai"\n[routes]\n"*" = "openai:gpt-5"\n')
    done = serve_until_exit(config, tmp_path)
    assert done.returncode != 0
    assert (
        "backends.openai.api_key: not set; provider 'openai' needs a key for https://api.openai.com/v1" in done.stderr
    )
