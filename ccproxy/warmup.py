"""Cache warm-up: the response cache's popular answers saved to a JSON-lines file, and loaded again at start."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from typing import Any

from ccproxy.core.jsoncodec import dumps, loads
from ccproxy.response_cache import ENTRY_PREFIX, ResponseCache, decode_entry

log = logging.getLogger("ccproxy.warmup")

_KEY = re.compile(r"[0-9a-f]{64}")


async def save_popular(responses: ResponseCache, path: Path, *, threshold: int, max_items: int) -> int:
    """Write the answers hit at least `threshold` times (most hit first, at most `max_items`) that the cache still
    holds, one JSON object a line, replacing the file atomically; how many were written. With none, the file is
    left as it is."""
    chosen = sorted(((hits, key) for key, hits in responses.popular.items() if hits >= threshold), reverse=True)
    lines: list[bytes] = []
    for hits, key in chosen[:max_items]:
        value = await responses.cache.get(ENTRY_PREFIX + key)
        if decode_entry(value) is not None:
            lines.append(dumps({"key": key, "hits": hits, "value": value}))
    if lines:
        await asyncio.to_thread(_write_atomically, path, b"".join(line + b"\n" for line in lines))
    return len(lines)


def _write_atomically(path: Path, data: bytes) -> None:
    """A reader (another worker starting) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


async def load_entries(responses: ResponseCache, path: Path, *, max_items: int) -> int:
    """Store the file's answers (at most `max_items`) in the cache for the response TTL, with their hit counts;
    how many. A missing or unreadable file, and lines that are not entries, are reported in one log line each and
    skipped: the warm-up never stops start-up."""
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    except FileNotFoundError:
        log.warning("cache warm-up: %s does not exist (yet): nothing loaded", path)
        return 0
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cache warm-up: cannot read %s (%s): nothing loaded", path, exc)
        return 0
    loaded = corrupt = 0
    for line in text.splitlines():
        if loaded >= max_items:
            break
        if not line.strip():
            continue
        entry = _entry(line)
        if entry is None:
            corrupt += 1
            continue
        key, hits, value = entry
        await responses.cache.set(ENTRY_PREFIX + key, value, responses.ttl)
        responses.popular[key] = max(hits, responses.popular.get(key, 0))
        loaded += 1
    if corrupt:
        log.warning("cache warm-up: %s has %d corrupt line(s), skipped", path, corrupt)
    log.info("cache warm-up: %d cached answer(s) loaded from %s", loaded, path)
    return loaded


def _entry(line: str) -> tuple[str, int, Any] | None:
    try:
        item = loads(line)
    except ValueError:
        return None
    if not isinstance(item, dict):
        return None
    key, hits, value = item.get("key"), item.get("hits"), item.get("value")
    if not isinstance(key, str) or not _KEY.fullmatch(key) or not isinstance(hits, int) or hits < 0:
        return None
    return (key, hits, value) if decode_entry(value) is not None else None
