"""The messages of recent conversations, parsed once: a new turn parses only the messages that changed.

A Claude Code conversation resends its whole history on every turn, and parsing it (allocating, and later freeing,
every string and dict of it) grows with the conversation. From one turn to the next the history is byte for byte
what it was, but for the newest messages: the new ones, and the last one or two that lose the `cache_control` marker
Claude Code moves forward. `MessageHistories` keeps, for a few recent conversations, each message as the JSON the
client wrote and as parsed; a body whose messages begin with those bytes is parsed with the run replaced by one
marker, and given the messages parsed then.

Why the result is exactly what parsing the whole body gives:
- A remembered message's bytes are orjson's compact writing of the parsed message, found at its place in the body it
  came in (Claude Code writes compact JSON, as JSON.stringify does). Equal bytes parse to equal values.
- In a new body the bytes are compared, message after message, from the first `"messages":[`: each must be followed
  by `,` or by the array's `]`. Each is one whole JSON object, so the run is a whole number of array elements.
- The run is replaced by a marker: a string of random characters made when the pipeline is built, which no client
  can know. Only if the parsed body's top-level `messages` starts with the marker is the run reused: the `[` before it
  then opened the top-level array the parser kept (the last member of that name, had there been two), and the run
  was that array's first elements. Anything else (a nested decoy, a duplicate member, other formatting, broken JSON)
  gives None, and the caller parses the whole body and words any error about the bytes the client sent.

The parsed messages are shared between requests: the pipeline reuses them only when no guardrail may amend messages
(`Guardrail.amends_messages`); conversion and the providers' `adjust_request` build new values and never change the
client's request. Bodies under MIN_BODY bytes are neither looked at nor remembered: they parse in a few µs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ccproxy.core.jsoncodec import dumps_strict

MIN_BODY = 8 * 1024  # smaller bodies parse in a few µs: not worth looking for, nor remembering
RECENT = 16  # conversations remembered (Claude Code: one per session, plus its side requests)
MAX_BYTES = 8 * 1024 * 1024  # client JSON held across them (the parsed values take about three times as much)
_KEY = b'"messages":['


@dataclass(slots=True, eq=False)  # compared by identity: equal histories are still two entries
class History:
    """One conversation's messages so far: as the client wrote each (JSON bytes) and as parsed."""

    raws: list[bytes]
    parsed: list[dict[str, Any]]
    size: int  # the bytes of `raws`


@dataclass(slots=True)
class Reuse:
    """The leading messages of a body that are those of a remembered conversation."""

    history: History
    count: int  # how many of its messages begin the body's array
    at: int  # where the first of them starts in the body
    end: int  # where the run ends: the next message, or the array's `]` when `closed`
    closed: bool  # the run is the whole array


class MessageHistories:
    """The messages of a few recent conversations, parsed; one per pipeline."""

    def __init__(self, recent: int = RECENT, max_bytes: int = MAX_BYTES, min_body: int = MIN_BODY) -> None:
        self.recent = recent
        self.max_bytes = max_bytes
        self.min_body = min_body
        self.bytes = 0
        self._histories: list[History] = []  # most recent first
        # Random, so no client can write it: finding it first in the parsed array proves where the run was.
        self.marker = "ccproxy-reused-messages-" + secrets.token_hex(16)
        marker = dumps_strict(self.marker)
        assert marker is not None
        self._marker = marker

    def __len__(self) -> int:
        return len(self._histories)

    def __iter__(self) -> Iterator[History]:
        """The remembered conversations, most recent first."""
        return iter(tuple(self._histories))

    def find(self, raw: bytes) -> Reuse | None:
        """The longest run of a remembered conversation's messages at the start of `raw`'s first messages array;
        None when there is none (or `raw` is too small to be worth it)."""
        if len(raw) < self.min_body or not self._histories:
            return None
        key = raw.find(_KEY)
        if key < 0:
            return None
        at = key + len(_KEY)
        for history in self._histories:
            count, end, closed = _run(raw, at, history.raws)
            if count:
                return Reuse(history, count, at, end, closed)
        return None

    def placeholder(self, reuse: Reuse) -> bytes:
        """What the run is replaced with before parsing: the marker, and the comma the run's last message had."""
        return self._marker if reuse.closed else self._marker + b","

    def splice(self, body: Any, reuse: Reuse) -> bool:
        """Put the run's parsed messages in the place of the marker in `body` (parsed with `placeholder`); False
        when the marker is not the first element of its top-level messages: the run was somewhere else."""
        messages = body.get("messages") if isinstance(body, dict) else None
        if type(messages) is not list or not messages or messages[0] != self.marker:
            return False
        messages[0:1] = reuse.history.parsed[: reuse.count]
        return True

    def learn(self, raw: bytes, messages: Any, reuse: Reuse | None) -> None:
        """Remember the messages of a (validated) body parsed from `raw`, by `find`'s `reuse` or whole (None): the
        reused run, then each further message found in `raw` as orjson writes it, up to the first that is not."""
        if len(raw) < self.min_body or type(messages) is not list:
            return
        if reuse is not None:
            history = reuse.history
            if reuse.count == len(history.raws) == len(messages):  # the same messages again: nothing new
                self._keep(history, history)
                return
            raws, parsed = history.raws[: reuse.count], history.parsed[: reuse.count]
            start = reuse.end
        else:
            key = raw.find(_KEY)
            if key < 0:
                return
            history, raws, parsed, start = None, [], [], key + len(_KEY)
        _found(raw, start, messages[len(raws) :], raws, parsed)
        if not raws:
            return
        self._keep(history, History(raws, parsed, sum(map(len, raws))))

    def _keep(self, old: History | None, new: History) -> None:
        histories = self._histories
        if old is not None and old in histories:
            histories.remove(old)
            self.bytes -= old.size
        if new.size > self.max_bytes:
            return
        histories.insert(0, new)
        self.bytes += new.size
        while len(histories) > self.recent or self.bytes > self.max_bytes:
            self.bytes -= histories.pop().size


def _run(raw: bytes, at: int, raws: list[bytes]) -> tuple[int, int, bool]:
    """How many of `raws` follow each other from `at` as elements of one array; where the run ends; whether the
    array ends with it."""
    count = 0
    for item in raws:
        if not raw.startswith(item, at):
            break
        after = at + len(item)
        follows = raw[after : after + 1]
        if follows == b"]":
            return count + 1, after, True
        if follows != b",":
            break
        count += 1
        at = after + 1
    return count, at, False


def _found(raw: bytes, at: int, messages: list[Any], raws: list[bytes], parsed: list[dict[str, Any]]) -> None:
    """Append to `raws` / `parsed` each of `messages` written, in turn, from `at` in `raw` as orjson writes it."""
    for message in messages:
        if type(message) is not dict:
            return
        written = dumps_strict(message)
        if written is None or not raw.startswith(written, at):
            return
        after = at + len(written)
        follows = raw[after : after + 1]
        if follows not in (b",", b"]"):
            return
        raws.append(written)
        parsed.append(message)
        if follows == b"]":
            return
        at = after + 1
