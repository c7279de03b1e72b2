"""The system prompt and the tools, converted and serialised once per distinct content and spliced into bodies.

Claude Code sends the same system prompt and the same ~60 KB of tool definitions on every turn. Converting them and,
above all, UTF-8-encoding their freshly parsed strings again is most of what a big request costs (benchmarks/
README.md, "Less work on big requests"). `SplicedPieces` keeps what they became as serialised JSON (orjson
`Fragment`s, written into the upstream body byte for byte) in a bounded LRU owned by the pipeline.

Keys, and why the output is byte-identical to converting afresh:
- tools: looked up by their names and `supports_strict_tools` (the only capability their conversion reads), then
  found in the raw body — where they ended last time, else the last `"tools"` key — and compared byte for byte with
  the JSON they were first seen as (`startswith`: nothing is hashed or re-encoded). Equal bytes parse to equal values
  of equal types (`1`, `1.0` and `true` stay apart). That these bytes are the top-level member, and its last
  occurrence (the one the parser kept), is proved by parsing the few hundred bytes after them as the rest of an
  object: a nested value would be followed by a closing bracket too early. When a guardrail may have amended the
  parsed tools (`Guardrail.amends_tools`), they must also equal the cached parsed ones. A hit replays the names into
  the request's tool-name map in the order conversion adds them, so long names still map back on the response side.
  Tools not found in the client's JSON (not orjson's escapes or blanks) are remembered as such, converted afresh
  without the search for RETRY_AFTER requests, then looked for again.
- system: looked up by the blocks' types and text lengths and compared text by text (after the guardrails, which
  may redact them), with `system_role` and `forward_cache_control` (and the blocks' `cache_control` when it is
  forwarded) in the key — all its conversion reads.
Anything orjson cannot write (a lone surrogate) is not cached; the pipeline then serialises as before.

Parsing: the ~60 KB of tools were also most of parsing each body. `parse` looks for the tools of the last few
requests in a new body the same way (byte for byte, at the top level, the last member of that name), parses the body
with `[]` in their place and puts the list parsed for the earlier request there. Equal bytes parse to equal values,
so the body equals a full parse; the list is shared, so the pipeline does this only when no guardrail may amend the
tools, and validation does not walk them again (they passed when they were first seen). The messages a conversation
repeats from its last turn are found and reused the same way in the same parse (ccproxy/history.py).

Converting messages: on the history of each body's conversation the pipeline keeps the conversion of its messages
after all but the last and after all (`Turn`, the core's `MessageRun`: the converted messages as one JSON fragment,
and the converter's state — open tool calls, system messages held for their results, the calls' names, long tool
names). The next turn starts from the longest run made with equal capabilities from these very message objects
(compared by identity: a guardrail may have put a redacted copy in the place of one): only its new messages are
converted and written, and the bytes are those of converting the whole body.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ccproxy.core import request as request_facade
from ccproxy.core.jsoncodec import Fragment, dumps_strict, loads
from ccproxy.core.plan import ModelCapabilities, RequestPlan
from ccproxy.core.toolnames import OPENAI_TOOL_NAME_LIMIT
from ccproxy.history import History, MessageHistories, Reuse

# Provider.adjust_request: the provider's last word on the converted body.
Adjust = Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]]

# A pipeline keeps this many converted pieces, and at most this many bytes of them (raw input plus output).
MAX_ENTRIES = 64
MAX_BYTES = 16 * 1024 * 1024
# Tools not found in a client's JSON (not orjson's escapes or blanks, or not last in the body) are looked for again
# after this many requests: one odd first request does not keep a client from the cache for good.
RETRY_AFTER = 32
RECENT_TOOLS = 4  # tools entries `parse` looks for in a new body (Claude Code: one per tool set in use)
_KEY = b'"tools"'
_BLANKS = b" \t\r\n"
_COLON = ord(":")
_REST_LIMIT = 8 * 1024  # at most this much of the body may follow the tools (Claude Code: a few hundred bytes)
_KEY_WINDOW = 64  # bytes before the tools in which `,"tools":` is looked for (JSON may put blanks around it)


@dataclass(slots=True)
class Parsed:
    """A body `SplicedPieces.parse` read without parsing what it already knew."""

    body: dict[str, Any]
    tools_reused: bool  # its tools are a recent request's (already validated)
    messages: Reuse | None  # its leading messages are a recent conversation's

    @property
    def messages_reused(self) -> int:
        """How many of its first messages are a recent conversation's (already validated)."""
        return 0 if self.messages is None else self.messages.count


@dataclass(slots=True)
class Turn:
    """Where a body stands in its conversation (ccproxy/history.py): the remembered history whose first `reused`
    messages it repeats (None: none), and the history that holds its messages now (None: not remembered)."""

    previous: History | None
    reused: int
    current: History | None


@dataclass(slots=True)
class _Tools:
    raw: bytes | None  # the client's JSON of the tools; None: they could not be found in it (see `skips`)
    parsed: list[dict[str, Any]]  # as parsed, for guardrails that may amend tools
    made: Any  # the converted list as a Fragment (None with `raw`)
    tail: int  # how many bytes followed the tools in the body they were first seen in (where to look next time)
    skips: int = 0  # requests converted afresh since they could not be found; looked for again after RETRY_AFTER


class BoundedLRU:
    """Least-recently-used entries, bounded by their number and by the bytes they hold."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (value, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped


def _tools_start(raw: bytes) -> int:
    """Where the value of the last `"tools"` key in `raw` starts (-1: none). Searched from the end: Claude Code puts
    the tools after the messages, which grow with the conversation."""
    at = raw.rfind(_KEY)
    if at < 0:
        return -1
    at = _skip_blanks(raw, at + len(_KEY))
    if at >= len(raw) or raw[at] != _COLON:  # a string value, not a key
        return -1
    return _skip_blanks(raw, at + 1)


def _skip_blanks(raw: bytes, at: int) -> int:
    size = len(raw)
    while at < size and raw[at] in _BLANKS:
        at += 1
    return at


def _top_level_tools(raw: bytes, start: int, end: int) -> bool:
    """Whether raw[start:end] (one whole JSON value) is the value of the top-level `tools` member, the last one of
    that name. The key before it is checked byte by byte; that it is a member of the top-level object, by parsing
    what follows it as the rest of an object: had it been nested, a closing bracket would come too early."""
    key = raw[max(start - _KEY_WINDOW, 0) : start].rstrip(_BLANKS)  # not raw[:start]: that copies the messages
    if not key.endswith(b":"):
        return False
    key = key[:-1].rstrip(_BLANKS)
    if not key.endswith(_KEY) or key[: -len(_KEY)].rstrip(_BLANKS)[-1:] not in (b",", b"{"):
        return False
    rest = raw[end:].lstrip(_BLANKS)
    if len(rest) > _REST_LIMIT:  # the tools came early (before the messages): proving it would cost a parse
        return False
    if not rest.startswith(b","):
        return rest.rstrip(_BLANKS) == b"}"
    try:
        members = loads(b"{" + rest[1:])
    except ValueError:
        return False
    return isinstance(members, dict) and "tools" not in members  # a later "tools" would be the one parsed


class SplicedPieces:
    """The converted tools and system message of requests, cached as serialised JSON; one per pipeline."""

    def __init__(self, lru: BoundedLRU | None = None, core_request: ModuleType = request_facade) -> None:
        self.lru = lru if lru is not None else BoundedLRU()
        # The core's request module: the facade, or one twin (the tests run both).
        self._convert_request = core_request.convert_request
        self._convert_tools = core_request.convert_tools
        self._convert_system = core_request.convert_system
        # The tools entries hit or made last, most recent first: what `parse` looks for in a new body.
        self._recent: list[_Tools] = []
        self.histories = MessageHistories()

    def parse(self, raw: bytes, tools: bool = True, messages: bool = False) -> Parsed | None:
        """`raw` parsed without the parts a recent request already had parsed: its top-level tools when they are
        byte for byte those of a recent request (`tools`), its leading messages when they are those of a recent
        conversation (`messages`, ccproxy/history.py). The body is parsed with `[]` in the place of the tools and a
        marker in the place of the messages, then given the values parsed then (equal bytes parse to equal values).
        Claude Code's ~60 KB of tools were most of the parse of each of its requests; its history grows with the
        conversation.

        The values are shared with the caches: only for pipelines whose guardrails leave them alone
        (`amends_tools`, `amends_messages`); nothing else changes a request. None when there is nothing to reuse or
        the body does not parse: the caller parses `raw` itself (and words any error about the bytes the client
        sent). Remembering the messages for the next turn is `learn_messages`, once the body is validated."""
        entry, start = self._recent_tools_in(raw) if tools else (None, -1)
        reuse = self.histories.find(raw) if messages else None
        if reuse is not None and entry is not None and start < reuse.end:
            reuse = None  # the tools came first: Claude Code writes them after the messages
        if entry is None and reuse is None:
            return None
        pieces: list[bytes] = []
        cut = 0
        if reuse is not None:
            pieces += (raw[: reuse.at], self.histories.placeholder(reuse))
            cut = reuse.end
        if entry is not None:
            known = entry.raw
            assert known is not None
            pieces += (raw[cut:start], b"[]")
            cut = start + len(known)
        pieces.append(raw[cut:])
        try:
            body = loads(b"".join(pieces))
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        if reuse is not None and not self.histories.splice(body, reuse):
            return None
        if entry is not None:
            body["tools"] = entry.parsed  # the last "tools" member, proved by _located: the one the parser kept
        return Parsed(body, entry is not None, reuse)

    def learn_messages(self, raw: bytes, parsed: Parsed | None, body: dict[str, Any]) -> Turn | None:
        """Remember the messages of `body` (validated, parsed from `raw`: by `parse`, else whole) for the
        conversation's next turn; where the body stands in its conversation (for `body`)."""
        reuse = None if parsed is None else parsed.messages
        current = self.histories.learn(raw, body.get("messages"), reuse)
        if reuse is None:
            return None if current is None else Turn(None, 0, current)  # None: a small body, or not remembered
        return Turn(reuse.history, reuse.count, current)

    def _recent_tools_in(self, raw: bytes) -> tuple[_Tools | None, int]:
        """The recent tools entry whose tools are the top-level tools of `raw`, and where they start."""
        for entry in self._recent:
            start = _located(raw, entry)
            if start >= 0:
                return entry, start
        return None, -1

    def _remember(self, entry: _Tools) -> None:
        recent = self._recent
        if recent and recent[0] is entry:
            return
        if entry in recent:
            recent.remove(entry)
        recent.insert(0, entry)
        del recent[RECENT_TOOLS:]

    def body(
        self,
        raw: bytes,
        body: dict[str, Any],
        plan: RequestPlan,
        adjust: Adjust,
        amended: bool = False,
        turn: Turn | None = None,
    ) -> bytes | None:
        """The Chat Completions body for `body` (parsed from `raw`), with its system message and tools written in
        as cached bytes: exactly `dumps(adjust(convert_request(body, plan), body))`. None when orjson cannot write
        the body (a lone surrogate): the caller serialises it afresh. `amended`: a guardrail may have changed the
        tools after they were parsed. `turn` (from `learn_messages`): the conversion of the messages it repeats
        from its conversation's last turn starts from what was kept then (the same message objects, converted with
        equal capabilities), and what it converts is kept for the next turn."""
        tools = body.get("tools")
        made_tools = self.tools(raw, tools, plan, amended) if tools else None
        made_system = self.system(body.get("system"), plan.capabilities)
        if turn is None:
            return dumps_strict(adjust(self._convert_request(body, plan, made_tools, made_system), body))
        messages = body["messages"]
        start = _start(turn, plan.capabilities, messages)
        count = len(messages)
        keep_at = () if turn.current is None else tuple(at for at in (count - 1, count) if at > 0)
        kept: list[Any] | None = [] if keep_at else None
        converted = self._convert_request(body, plan, made_tools, made_system, start, keep_at, kept)
        if kept and turn.current is not None:
            # What the next turn may start from: all its messages, or all but the last (Claude Code's next turn).
            # A body sent again started from the run of all: the one of all but the last, kept before, stays.
            made = {run.count for run in kept}
            earlier = turn.current.runs.get(plan.capabilities, ())
            kept += [run for run in earlier if run.count in keep_at and run.count not in made]
            turn.current.runs[plan.capabilities] = kept
        return dumps_strict(adjust(converted, body))

    def tools(self, raw: bytes, tools: list[dict[str, Any]], plan: RequestPlan, amended: bool = False) -> Any:
        """`tools` converted (a Fragment when they could be serialised), `plan.tool_names` filled as conversion
        fills it. `amended`: a guardrail may have changed them, so they are compared with the cached ones too."""
        strict = plan.capabilities.supports_strict_tools
        names = tuple(tool["name"] for tool in tools)
        key = ("tools", strict, names)
        entry: _Tools | None = self.lru.get(key)
        # `entry.parsed is tools`: parsed from its very bytes (`parse`), so already found in `raw`.
        if (
            entry is not None
            and entry.raw is not None
            and ((entry.parsed is tools and not amended) or self._seen(raw, tools, entry, amended))
        ):
            self._remember(entry)
            to_upstream = plan.tool_names.to_upstream
            for name in names:
                if len(name) > OPENAI_TOOL_NAME_LIMIT:  # a name that fits maps to itself: nothing to replay
                    to_upstream(name)
            return entry.made
        made = self._convert_tools(tools, plan.tool_names, strict)
        made_bytes = dumps_strict(made)
        if made_bytes is None:
            return made
        if entry is not None and entry.raw is None and entry.skips < RETRY_AFTER:
            entry.skips += 1  # not found in this client's JSON last time: no use dumping its tools again yet
            return Fragment(made_bytes)
        source = dumps_strict(tools)
        start = _tools_start(raw)
        if source is not None and start >= 0 and raw.startswith(source, start):
            end = start + len(source)
            if _top_level_tools(raw, start, end):
                # The parsed tools are held too (for amending guardrails): counted as twice their JSON.
                entry = _Tools(source, tools, Fragment(made_bytes), len(raw) - end)
                self.lru.put(key, entry, len(made_bytes) + 3 * len(source))
                self._remember(entry)
                return entry.made
        if entry is None or entry.raw is None:  # remembered: the next requests of this client skip the dump above
            self.lru.put(key, _Tools(None, [], None, 0), len(made_bytes))
        return Fragment(made_bytes)

    @staticmethod
    def _seen(raw: bytes, tools: list[dict[str, Any]], entry: _Tools, amended: bool) -> bool:
        """Whether the top-level tools of `raw` are `entry`'s, byte for byte (and, if amended, still equal)."""
        return _located(raw, entry) >= 0 and (not amended or tools == entry.parsed)

    def system(self, system: Any, capabilities: ModelCapabilities) -> Any:
        """The system message `system` becomes: a Fragment (None when there is none, or orjson cannot write it)."""
        forward = capabilities.forward_cache_control
        found = _system_shape(system, forward)
        if found is None:
            return None
        shape, texts = found
        # Looked up by the texts' lengths and compared, not hashed: comparing costs a fraction of hashing.
        key = ("system", capabilities.system_role, forward, shape)
        entry = self.lru.get(key)
        if entry is not None and entry[0] == texts:
            return entry[1]
        message = self._convert_system(system, capabilities)
        made_bytes = None if message is None else dumps_strict(message)
        if made_bytes is None:
            return None
        made = Fragment(made_bytes)
        self.lru.put(key, (texts, made), len(made_bytes) * 3)
        return made


def _start(turn: Turn, capabilities: ModelCapabilities, messages: list[Any]) -> Any:
    """The longest kept conversion of the messages `turn` repeats (a MessageRun), made with these capabilities from
    these very message objects (a guardrail may have put a redacted copy in the place of one); None: none."""
    previous = turn.previous
    if previous is None or not turn.reused:
        return None
    best = None
    for run in previous.runs.get(capabilities, ()):
        if run.count <= turn.reused and (best is None or run.count > best.count) and _same(run.sources, messages):
            best = run
    return best


def _same(sources: tuple[Any, ...], messages: list[Any]) -> bool:
    return all(source is message for source, message in zip(sources, messages, strict=False))


def _located(raw: bytes, entry: _Tools) -> int:
    """Where `entry`'s tools are in `raw` as its top-level tools, byte for byte; -1: they are not."""
    known = entry.raw
    assert known is not None
    start = len(raw) - entry.tail - len(known)  # where they were in the body they were first seen in
    if start < 0 or not raw.startswith(known, start):
        start = _tools_start(raw)
        if start < 0 or not raw.startswith(known, start):
            return -1
    return start if _top_level_tools(raw, start, start + len(known)) else -1


def _system_shape(system: Any, forward_cache_control: bool) -> tuple[Hashable, Any] | None:
    """What the system message is made of: a cheap key (block types, text lengths, and markers where they are
    forwarded) and the texts to compare; None: nothing to cache."""
    if isinstance(system, str):
        return (len(system), system) if system else None
    if not isinstance(system, list) or not system:
        return None
    texts = tuple(block.get("text") for block in system)
    lengths = tuple(len(text) if isinstance(text, str) else -1 for text in texts)
    types = tuple(block.get("type") for block in system)
    if forward_cache_control:
        markers = tuple(dumps_strict(block.get("cache_control")) for block in system)
        return (types, lengths, markers), texts
    return (types, lengths), texts
