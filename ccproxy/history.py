"""The messages of recent conversations, parsed once: a new turn parses only the messages that changed.

A Claude Code conversation resends its whole history on every turn, and parsing it (allocating, and later freeing,
every string and dict of it) grows with the conversation. From one turn to the next the history is byte for byte
what it was, but for the newest messages: the new ones, and the last one or two that lose the `cache_control` marker
Claude Code moves forward. `MessageHistories` keeps, for a few recent conversations, each message as the JSON the
client wrote and as parsed; a body whose messages begin with those bytes is parsed with the run replaced by one
marker, and given the messages parsed then.

Why the result is exactly what parsing the whole body gives:
- A remembered message's bytes are orjson's compact writing of the parsed message, found at its place in the body it
  came in (Claude Code writes compact JSON, as JSON.stringify does), one after the other with their commas: the
  history keeps that body and where each message ends in it. Equal bytes parse to equal values.
- In a new body the longest run of those messages from the first `"messages":[` is found by comparing the bytes of
  the first k messages at once (all, then all but the last, else halving k); the run must be followed by `,` or by
  the array's `]`. Each message is one whole JSON object, so the run is a whole number of array elements.
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
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ccproxy.core.jsoncodec import dumps_strict

MIN_BODY = 8 * 1024  # smaller bodies parse in a few µs: not worth looking for, nor remembering
RECENT = 64  # conversations remembered (Claude Code: one per session, plus its side requests)
MAX_BYTES = 16 * 1024 * 1024  # the bodies held across them (their parsed messages take ~2.7 times their JSON)
_KEY = b'"messages":['


@dataclass(slots=True, eq=False)  # compared by identity: equal histories are still two entries
class History:
    """One conversation's messages so far, as parsed and as written one after the other in a body it sent."""

    source: bytes  # that body
    start: int  # where the first message starts in it
    ends: list[int]  # where each message ends in it (the next starts after the comma that follows)
    parsed: list[dict[str, Any]]
    # What the pipeline kept of converting them, per conversion settings (ccproxy/splice.py `Turn`).
    runs: dict[Hashable, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.source)

    @property
    def raws(self) -> list[bytes]:
        """Each message's JSON as the client wrote it."""
        starts = [self.start] + [end + 1 for end in self.ends[:-1]]
        return [self.source[begin:end] for begin, end in zip(starts, self.ends, strict=True)]

    def run(self, raw: bytes, at: int) -> tuple[int, int, bool]:
        """How many of these messages follow each other from `at` in `raw` as elements of one array; where the run
        ends (the next element, or the array's `]`); whether the array ends with it."""
        view = memoryview(self.source)
        start, ends = self.start, self.ends

        def repeats(count: int) -> bool:  # the first `count` messages, and the commas between them
            return raw.startswith(view[start : ends[count - 1]], at)

        # Claude Code's next turn repeats them all, or all but the last (whose cache marker moved): one comparison.
        # Else (an edited or rewound conversation) the longest run is halved for: a run's first messages are runs.
        total = len(ends)
        if not total or not repeats(1):  # another conversation (most of those remembered): one short comparison
            return 0, at, False
        if repeats(total):
            count = total
        elif total > 1 and repeats(total - 1):
            count = total - 1
        else:
            low, high = 0, total - 2
            while low < high:
                middle = (low + high + 1) // 2
                low, high = (middle, high) if repeats(middle) else (low, middle - 1)
            count = low
        while count:
            found = _ended(raw, at + ends[count - 1] - start, count)
            if found is not None:
                return found
            count -= 1  # the last one is followed by something else: the one before it by its comma
        return 0, at, False


def _ended(raw: bytes, after: int, count: int) -> tuple[int, int, bool] | None:
    """A run of `count` messages ending at `after`: where the next element starts, or where the array ends; None
    when neither a comma nor the `]` follows."""
    follows = raw[after : after + 1]
    if follows == b",":
        return count, after + 1, False
    if follows == b"]":
        return count, after, True
    return None


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
            count, end, closed = history.run(raw, at)
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

    def learn(self, raw: bytes, messages: Any, reuse: Reuse | None) -> History | None:
        """Remember the messages of a (validated) body parsed from `raw`, by `find`'s `reuse` or whole (None): the
        reused run, then each further message found in `raw` as orjson writes it, up to the first that is not.
        The history that holds them now (None: none)."""
        if len(raw) < self.min_body or type(messages) is not list:
            return None
        if reuse is not None:
            history = reuse.history
            if reuse.count == len(history.ends) == len(messages):  # the same messages again: nothing new
                self._keep(history, history)
                return history
            shift = reuse.at - history.start  # the run, where it is in `raw`
            ends = [end + shift for end in history.ends[: reuse.count]]
            parsed, first, at = history.parsed[: reuse.count], reuse.at, reuse.end
        else:
            key = raw.find(_KEY)
            if key < 0:
                return None
            history, ends, parsed, first = None, [], [], key + len(_KEY)
            at = first
        _found(raw, at, messages[len(parsed) :], ends, parsed)
        if not parsed:
            return None
        made = History(raw, first, ends, parsed)
        return made if self._keep(history, made) else None

    def _keep(self, old: History | None, new: History) -> bool:
        """`new` in the place of `old` (if still kept), most recent; False when it is too big to keep."""
        histories = self._histories
        if old is not None and old in histories:
            histories.remove(old)
            self.bytes -= old.size
        if new.size > self.max_bytes:
            return False
        histories.insert(0, new)
        self.bytes += new.size
        while len(histories) > self.recent or self.bytes > self.max_bytes:
            self.bytes -= histories.pop().size
        return True


def _found(raw: bytes, at: int, messages: list[Any], ends: list[int], parsed: list[dict[str, Any]]) -> None:
    """Append to `ends` / `parsed` each of `messages` written, in turn, from `at` in `raw` as orjson writes it."""
    for message in messages:
        if type(message) is not dict:
            return
        written = dumps_strict(message)
        if written is None or not raw.startswith(written, at):
            return
        found = _ended(raw, at + len(written), 1)
        if found is None:
            return
        ends.append(at + len(written))
        parsed.append(message)
        if found[2]:
            return
        at = found[1]
