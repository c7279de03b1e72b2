"""The warm-up file: popular answers saved atomically as JSON lines, loaded again with their hit counts; a missing or
corrupt file reported once and skipped."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ccproxy.default_plugins.memory_cache import MemoryCacheBackend
from ccproxy.response_cache import ENTRY_PREFIX, ResponseCache, decode_entry, encode_entry
from ccproxy.warmup import load_entries, save_popular

KEYS = [f"{n:064x}" for n in range(4)]


async def cache_with(hits: dict[str, int]) -> ResponseCache:
    responses = ResponseCache(MemoryCacheBackend(), ttl=300, dedupe_wait=5)
    for key, count in hits.items():
        await responses.cache.set(ENTRY_PREFIX + key, encode_entry("application/json", f'{{"n":"{key}"}}'.encode()))
        responses.popular[key] = count
    return responses


async def test_popular_entries_are_saved_most_hit_first_and_loaded_again(tmp_path: Path) -> None:
    path = tmp_path / "warm" / "cache.jsonl"
    saved = await cache_with({KEYS[0]: 5, KEYS[1]: 1, KEYS[2]: 9, KEYS[3]: 3})
    await saved.cache.delete(ENTRY_PREFIX + KEYS[3])  # expired meanwhile: not saved
    assert await save_popular(saved, path, threshold=3, max_items=10) == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["key"], line["hits"]) for line in lines] == [(KEYS[2], 9), (KEYS[0], 5)]
    assert not list(path.parent.glob(".*.tmp"))  # written through a temporary file, replaced atomically

    fresh = await cache_with({})
    assert await load_entries(fresh, path, max_items=1) == 1
    assert fresh.popular == {KEYS[2]: 9}
    found = decode_entry(await fresh.cache.get(ENTRY_PREFIX + KEYS[2]))
    assert found == ("application/json", f'{{"n":"{KEYS[2]}"}}'.encode())
    assert await fresh.cache.get(ENTRY_PREFIX + KEYS[0]) is None  # beyond max_items


async def test_nothing_popular_leaves_the_file_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    path.write_text("kept\n")
    assert await save_popular(await cache_with({KEYS[0]: 1}), path, threshold=2, max_items=10) == 0
    assert path.read_text() == "kept\n"


async def test_a_missing_file_is_reported_once_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    responses = await cache_with({})
    with caplog.at_level(logging.WARNING, "ccproxy.warmup"):
        assert await load_entries(responses, tmp_path / "absent.jsonl", max_items=10) == 0
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"cache warm-up: {tmp_path / 'absent.jsonl'} does not exist (yet): nothing loaded"
    ]


async def test_corrupt_lines_are_reported_once_and_the_good_ones_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"key": KEYS[1], "hits": 4, "value": encode_entry("text/event-stream", b"data: [DONE]\n\n")}
    path = tmp_path / "cache.jsonl"
    corrupt = [
        "{not json",
        "[1, 2]",
        json.dumps({"key": "short", "hits": 1, "value": good["value"]}),
        json.dumps({"key": KEYS[2], "hits": -1, "value": good["value"]}),
        json.dumps({"key": KEYS[3], "hits": 1, "value": {"format": 99}}),
    ]
    path.write_text("\n".join([*corrupt, json.dumps(good), ""]))
    responses = await cache_with({})
    with caplog.at_level(logging.WARNING, "ccproxy.warmup"):
        assert await load_entries(responses, path, max_items=10) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"cache warm-up: {path} has 5 corrupt line(s), skipped"]
    assert responses.popular == {KEYS[1]: 4}


async def test_an_unreadable_file_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cache.jsonl"
    path.write_bytes(b"\xff\xfe not utf-8")
    with caplog.at_level(logging.WARNING, "ccproxy.warmup"):
        assert await load_entries(await cache_with({}), path, max_items=10) == 0
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
