"""Cache warm-up through the real server: popular answers saved while running and at stop, loaded by the next start
(its first request is a hit); a corrupt file is reported once and the server serves as usual."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import anthropic

from tests.support.proxy_process import FakeUpstream, ProxyServer, start_proxy


def warm_proxy(tmp_path: Path, upstream: FakeUpstream, file: Path, name: str, **env: str) -> ProxyServer:
    settings = {
        "RESPONSE_CACHE": "on",
        "CACHE_WARMUP_ENABLED": "true",
        "CACHE_WARMUP_FILE_PATH": str(file),
        "CACHE_WARMUP_POPULARITY_THRESHOLD": "1",
        **env,
    }
    return start_proxy(
        tmp_path,
        upstream=upstream,
        api_key=upstream.api_key or "",
        big_model="gpt-5",
        small_model="gpt-4o-mini",
        extra_env=settings,
        name=name,
    )


def ask(proxy: ProxyServer, text: str) -> tuple[str, dict[str, Any]]:
    with anthropic.Anthropic(base_url=proxy.base_url, api_key="dummy", max_retries=0, timeout=30) as sdk:
        raw = sdk.messages.with_raw_response.create(
            model="claude-opus-4-8", max_tokens=50, messages=[{"role": "user", "content": text}]
        )
        return raw.headers["x-ccproxy-cache"], raw.parse().model_dump()


def calls(upstream: FakeUpstream, text: str) -> int:
    return sum(1 for r in upstream.chat_requests() if text in str(r["body"].get("messages")))


def test_popular_answers_survive_a_restart(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    file = tmp_path / "warmup.jsonl"
    text = f"warm me up {uuid.uuid4().hex}"
    first = warm_proxy(tmp_path, fake_upstream, file, "proxy-warm-1", CACHE_WARMUP_SAVE_INTERVAL_SECONDS="0.3")
    try:
        assert [ask(first, text)[0] for _ in range(2)] == ["miss", "hit"]
        deadline = time.monotonic() + 10
        while not file.exists():  # the periodic save
            assert time.monotonic() < deadline, first.process.log_tail()
            time.sleep(0.1)
    finally:
        first.stop_and_check()
    (entry,) = [json.loads(line) for line in file.read_text().splitlines()]
    assert entry["hits"] == 1 and "FAKE_OPENAI_REPLY" in entry["value"]["text"]

    second = warm_proxy(tmp_path, fake_upstream, file, "proxy-warm-2")
    try:
        outcome, message = ask(second, text)
        assert outcome == "hit" and calls(fake_upstream, text) == 1
        assert "FAKE_OPENAI_REPLY" in message["content"][0]["text"]
    finally:
        second.stop_and_check()
    assert "cache warm-up: 1 cached answer(s) loaded" in second.process.log_text()


def test_a_corrupt_warmup_file_is_reported_once_and_skipped(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    file = tmp_path / "warmup.jsonl"
    file.write_text("this is not\na warm-up file\n")
    proxy = warm_proxy(tmp_path, fake_upstream, file, "proxy-warm-corrupt", CACHE_WARMUP_AUTO_SAVE_POPULAR="false")
    try:
        text = f"after a corrupt file {uuid.uuid4().hex}"
        assert [ask(proxy, text)[0] for _ in range(2)] == ["miss", "hit"]
    finally:
        proxy.stop_and_check()
    log = proxy.process.log_text()
    assert log.count(f"cache warm-up: {file} has 2 corrupt line(s), skipped") == 1
    assert file.read_text() == "this is not\na warm-up file\n"  # auto-save off: never written
