"""Hypothesis strategies for what a client may send to /v1/messages: valid Anthropic Messages requests (text, images,
documents, tool_use / tool_result pairs, thinking blocks, system as a string or blocks, tools, tool_choice, stream,
metadata, stop_sequences, sampling) and invalid ones — wrong types, missing fields, bad roles, bad JSON, nesting
too deep (which ccproxy must refuse with 400) and odd but readable ones (unpaired tool results, huge values, unknown
fields and blocks, lone surrogates; ccproxy may answer or refuse them, never fail)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import strategies as st

from tests.support.upstream_strategies import json_values

MODELS = ("claude-opus-4-8", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku-20241022")
TOOL_NAMES = ("Bash", "Read", "get_weather", "mcp__files__read_file", "Edit")
# A 1x1 PNG: what an image block carries, small.
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
# Deeper than ccproxy's nesting bound (ccproxy/core/nesting.py MAX_DEPTH is far below this).
TOO_DEEP = 2000

texts = st.one_of(
    st.sampled_from(["hi", "What is 2+2?", "Résumé ✓ 日本語 \U0001f600", "line one\nline two", "  spaced  ", "{}"]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=30).filter(lambda text: text.strip()),
)
cache_controls = st.one_of(st.none(), st.none(), st.just({"type": "ephemeral"}))
json_objects = st.dictionaries(st.sampled_from(["command", "path", "city", "n", "flag"]), json_values, max_size=3)


def _with_cache_control(block: dict[str, Any], control: dict[str, Any] | None) -> dict[str, Any]:
    return block if control is None else {**block, "cache_control": control}


text_blocks = st.builds(
    lambda text, control: _with_cache_control({"type": "text", "text": text}, control), texts, cache_controls
)
image_blocks = st.one_of(
    st.just({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}}),
    st.just({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}),
)
document_blocks = st.just(
    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The document."}}
)
user_blocks = st.one_of(text_blocks, text_blocks, text_blocks, image_blocks, document_blocks)
thinking_blocks = st.builds(
    lambda thinking, signature: {"type": "thinking", "thinking": thinking, "signature": signature},
    texts,
    st.sampled_from(["EqQBCkgIARABGAIiQL", "sig=="]),
)
schemas = st.sampled_from(
    [
        {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
        {"type": "object", "properties": {}},
        {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}}},
    ]
)


@st.composite
def tool_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(st.sampled_from(TOOL_NAMES), unique=True, max_size=3))
    tools = []
    for name in names:
        tool: dict[str, Any] = {"name": name, "input_schema": draw(schemas)}
        if draw(st.booleans()):
            tool["description"] = draw(texts)
        tools.append(_with_cache_control(tool, draw(cache_controls)))
    return tools


@st.composite
def conversations(draw: st.DrawFn, tool_names: list[str]) -> list[dict[str, Any]]:
    """Alternating turns starting and ending with the user; every tool_use answered by a tool_result right after."""
    messages: list[dict[str, Any]] = []
    pending: list[str] = []  # tool_use ids the next user turn must answer
    for turn in range(draw(st.integers(0, 2))):
        messages.append({"role": "user", "content": draw(_user_content(pending))})
        pending = []
        blocks: list[dict[str, Any]] = []
        if draw(st.booleans()):
            blocks.append(draw(thinking_blocks))
        if draw(st.booleans()) or not tool_names:
            blocks.append({"type": "text", "text": draw(texts)})
        for index in range(draw(st.integers(0, min(2, len(tool_names))))):
            tool_id = f"toolu_{turn}{index}abc"
            name = draw(st.sampled_from(tool_names))
            blocks.append({"type": "tool_use", "id": tool_id, "name": name, "input": draw(json_objects)})
            pending.append(tool_id)
        if not blocks:
            blocks.append({"type": "text", "text": draw(texts)})
        plain = len(blocks) == 1 and blocks[0]["type"] == "text" and draw(st.booleans())
        messages.append({"role": "assistant", "content": blocks[0]["text"] if plain else blocks})
    messages.append({"role": "user", "content": draw(_user_content(pending))})
    return messages


def _user_content(pending: list[str]) -> st.SearchStrategy[Any]:
    """A user turn: the results of `pending` tool calls first, then text, images, documents."""
    results = [
        st.builds(
            lambda content, is_error, tool_id=tool_id: {
                "type": "tool_result",
                "tool_use_id": tool_id,
                "content": content,
                **({} if is_error is None else {"is_error": is_error}),
            },
            st.one_of(texts, st.lists(text_blocks, min_size=1, max_size=2)),
            st.one_of(st.none(), st.booleans()),
        )
        for tool_id in pending
    ]
    if not results:
        return st.one_of(texts, st.lists(user_blocks, min_size=1, max_size=3))
    return st.builds(lambda head, tail: [*head, *tail], st.tuples(*results), st.lists(user_blocks, max_size=1))


systems = st.one_of(st.none(), texts, st.lists(text_blocks, min_size=1, max_size=2))
thinking_settings = st.one_of(
    st.none(),
    st.builds(lambda budget: {"type": "enabled", "budget_tokens": budget}, st.integers(1024, 32000)),
    st.just({"type": "disabled"}),
    st.just({"type": "adaptive"}),
)


def _tool_choices(names: list[str]) -> st.SearchStrategy[Any]:
    if not names:
        return st.one_of(st.none(), st.just({"type": "auto"}), st.just({"type": "none"}))
    base = st.one_of(
        st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"}]),
        st.builds(lambda name: {"type": "tool", "name": name}, st.sampled_from(names)),
    )
    with_parallel = st.builds(lambda choice, flag: {**choice, "disable_parallel_tool_use": flag}, base, st.booleans())
    return st.one_of(st.none(), base, with_parallel)


# What only /v1/messages reads: count_tokens accepts any value there.
MESSAGES_ONLY_FIELDS = frozenset(
    {"max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata"}
)
# Optional top-level fields: each present or absent.
OPTIONAL = {
    "temperature": st.floats(0, 1),
    "top_p": st.floats(0, 1, exclude_min=True),
    "top_k": st.integers(0, 500),
    "stop_sequences": st.lists(
        st.sampled_from(["STOP", "\n\nHuman:", "###", "END", "</answer>", "Q:"]), unique=True, max_size=6
    ),
    "metadata": st.fixed_dictionaries({}, optional={"user_id": st.sampled_from(["user-1", "u_" + "a" * 40])}),
}


@st.composite
def messages_requests(draw: st.DrawFn, *, stream: bool | None = None) -> dict[str, Any]:
    """A valid /v1/messages body (`stream`: forced to that value; None = absent, false or true)."""
    tools = draw(st.one_of(st.just([]), tool_lists()))
    names = [tool["name"] for tool in tools]
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(MODELS)),
        "max_tokens": draw(st.integers(0, 64000)),
        "messages": draw(conversations(names)),
    }
    extras: dict[str, Any] = {
        "system": draw(systems),
        "tools": tools or None,
        "tool_choice": draw(_tool_choices(names)) if tools else None,
        "thinking": draw(thinking_settings),
    }
    if stream is None:
        extras["stream"] = draw(st.sampled_from([None, False, True]))
    else:
        extras["stream"] = stream
    for name, strategy in OPTIONAL.items():
        if draw(st.booleans()):
            extras[name] = draw(strategy)
    body.update({name: value for name, value in extras.items() if value is not None})
    return body


@st.composite
def count_tokens_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid /v1/messages/count_tokens body: a messages body without `max_tokens`, sampling or streaming."""
    body = draw(messages_requests())
    for name in MESSAGES_ONLY_FIELDS:
        body.pop(name, None)
    return body


# -------------------------------------------------------------------------------------------- invalid requests

Expect = Literal["refused", "any"]


@dataclass(frozen=True)
class ClientBody:
    """Bytes a client sends, and what ccproxy must do with them: `refused` — 400 invalid_request_error; `any` — an
    answer or an Anthropic error, whichever (but never a 5xx of its own)."""

    raw: bytes
    expect: Expect
    why: str
    field: str = ""  # the top-level field the body was changed at ("" when it is no JSON object)


def _set(path: tuple[Any, ...], value: Any) -> Any:
    """A mutation: set `path` in (a copy of) the body to `value` (a missing path ends the walk where it is)."""
    return ("set", path, value)


def _drop(path: tuple[Any, ...]) -> Any:
    return ("drop", path, None)


# Mutations of a valid body that the Messages API refuses with 400 (validated fields, wrong type or value).
REFUSED: list[tuple[str, Any]] = [
    ("no model", _drop(("model",))),
    ("model not a string", _set(("model",), 42)),
    ("model empty", _set(("model",), "")),
    ("model null", _set(("model",), None)),
    ("no max_tokens", _drop(("max_tokens",))),
    ("max_tokens a string", _set(("max_tokens",), "100")),
    ("max_tokens negative", _set(("max_tokens",), -1)),
    ("max_tokens a float", _set(("max_tokens",), 1.5)),
    ("max_tokens a boolean", _set(("max_tokens",), True)),
    ("max_tokens null", _set(("max_tokens",), None)),
    ("no messages", _drop(("messages",))),
    ("messages an object", _set(("messages",), {"role": "user", "content": "hi"})),
    ("messages empty", _set(("messages",), [])),
    ("message a string", _set(("messages", 0), "hi")),
    ("bad role", _set(("messages", 0, "role"), "robot")),
    ("role not a string", _set(("messages", 0, "role"), 1)),
    ("no role", _drop(("messages", 0, "role"))),
    ("no content", _drop(("messages", 0, "content"))),
    ("content a number", _set(("messages", 0, "content"), 7)),
    ("content an object", _set(("messages", 0, "content"), {"type": "text", "text": "hi"})),
    ("block not an object", _set(("messages", 0, "content"), ["hi"])),
    ("block without type", _set(("messages", 0, "content"), [{"text": "hi"}])),
    ("block type a number", _set(("messages", 0, "content"), [{"type": 3, "text": "hi"}])),
    ("text block without text", _set(("messages", 0, "content"), [{"type": "text"}])),
    ("text not a string", _set(("messages", 0, "content"), [{"type": "text", "text": ["hi"]}])),
    (
        "image of a bad media type",
        _set(
            ("messages", 0, "content"),
            [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}}],
        ),
    ),
    ("image without source", _set(("messages", 0, "content"), [{"type": "image"}])),
    ("tool_result without id", _set(("messages", 0, "content"), [{"type": "tool_result", "content": "ok"}])),
    (
        "tool_result content a number",
        _set(("messages", 0, "content"), [{"type": "tool_result", "tool_use_id": "t", "content": 5}]),
    ),
    ("thinking block without text", _set(("messages", 0, "content"), [{"type": "thinking", "signature": "s"}])),
    ("system a number", _set(("system",), 12)),
    ("system an object", _set(("system",), {"type": "text", "text": "x"})),
    ("system block without text", _set(("system",), [{"type": "text"}])),
    ("tools an object", _set(("tools",), {"name": "Bash"})),
    ("tool without name", _set(("tools",), [{"input_schema": {"type": "object"}}])),
    ("tool name empty", _set(("tools",), [{"name": "", "input_schema": {"type": "object"}}])),
    ("tool without schema", _set(("tools",), [{"name": "Bash"}])),
    (
        "duplicate tool names",
        _set(("tools",), [{"name": "Bash", "input_schema": {"type": "object"}}] * 2),
    ),
    ("tool_choice of a bad type", _set(("tool_choice",), {"type": "sometimes"})),
    ("tool_choice a string", _set(("tool_choice",), "auto")),
    ("tool_choice tool without name", _set(("tool_choice",), {"type": "tool"})),
    ("thinking without budget", _set(("thinking",), {"type": "enabled"})),
    ("thinking budget too small", _set(("thinking",), {"type": "enabled", "budget_tokens": 100})),
    ("thinking budget a string", _set(("thinking",), {"type": "enabled", "budget_tokens": "lots"})),
    ("temperature above 1", _set(("temperature",), 2)),
    ("temperature negative", _set(("temperature",), -0.5)),
    ("temperature a string", _set(("temperature",), "hot")),
    ("top_p above 1", _set(("top_p",), 1.5)),
    ("top_k negative", _set(("top_k",), -1)),
    ("stop_sequences a string", _set(("stop_sequences",), "STOP")),
    ("stop sequence a number", _set(("stop_sequences",), [1])),
    ("stream a string", _set(("stream",), "yes")),
    ("metadata a string", _set(("metadata",), "user")),
    ("metadata user_id a number", _set(("metadata",), {"user_id": 5})),
    ("output format not json_schema", _set(("output_config",), {"format": {"type": "xml"}})),
]

# Mutations the Messages API would refuse or answer, but a proxy may pass on: ccproxy must not fail on them.
ODD: list[tuple[str, Any]] = [
    ("unpaired tool_result", _set(("messages", -1, "content"), [{"type": "tool_result", "tool_use_id": "toolu_x"}])),
    (
        "tool_result of an unknown id next to text",
        _set(
            ("messages", -1, "content"),
            [{"type": "text", "text": "hi"}, {"type": "tool_result", "tool_use_id": "nope", "content": "x"}],
        ),
    ),
    (
        "tool_use never answered",
        _set(
            ("messages",),
            [
                {"role": "user", "content": "run it"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
                {"role": "user", "content": "and?"},
            ],
        ),
    ),
    (
        "two user turns in a row",
        _set(("messages",), [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
    ),
    (
        "assistant turn last",
        _set(("messages",), [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
    ),
    ("system role in messages", _set(("messages", 0, "role"), "system")),
    ("empty text", _set(("messages", 0, "content"), "")),
    ("empty block list", _set(("messages", -1, "content"), [])),
    ("unknown block type", _set(("messages", -1, "content"), [{"type": "hologram", "data": 1}])),
    ("unknown top-level field", _set(("frobnicate",), {"a": [1, 2]})),
    ("huge max_tokens", _set(("max_tokens",), 10**15)),
    ("max_tokens zero", _set(("max_tokens",), 0)),
    ("huge top_k", _set(("top_k",), 2**62)),
    ("very long model name", _set(("model",), "claude-" + "x" * 5000)),
    ("model name with odd characters", _set(("model",), "claude/../../etc\u0000passwd")),
    ("long text", _set(("messages", -1, "content"), "word " * 20000)),
    ("many stop sequences", _set(("stop_sequences",), [f"S{index}" for index in range(12)])),
    ("empty stop sequence", _set(("stop_sequences",), [""])),
    ("tool_choice of an undeclared tool", _set(("tool_choice",), {"type": "tool", "name": "Nope"})),
    ("tool name with spaces", _set(("tools",), [{"name": "my tool!", "input_schema": {"type": "object"}}])),
    ("tool name too long", _set(("tools",), [{"name": "t" * 200, "input_schema": {"type": "object"}}])),
    (
        "image from a data URL",
        _set(("messages", -1, "content"), [{"type": "image", "source": {"type": "url", "url": "data:,x"}}]),
    ),
    ("thinking of another type", _set(("thinking",), {"type": "sometimes", "budget_tokens": "x"})),
    ("metadata with other fields", _set(("metadata",), {"user_id": "u", "session": {"a": 1}})),
    ("container fields", _set(("container",), "container_123")),
]

# Bodies that are no JSON object at all, or whose bytes are not JSON.
RAW_REFUSED: list[tuple[str, bytes]] = [
    ("empty body", b""),
    ("not JSON", b"model=claude&max_tokens=1"),
    ("truncated JSON", b'{"model": "claude-opus-4-8", "max_tokens": 10, "messages": [{"role": "us'),
    ("a JSON array", b'[{"role": "user", "content": "hi"}]'),
    ("a JSON string", b'"hello"'),
    ("JSON null", b"null"),
    ("a number", b"42"),
    ("invalid UTF-8", b'{"model": "claude-opus-4-8\xff\xfe", "max_tokens": 1, "messages": []}'),
    ("nesting too deep", b'{"model": "m", "max_tokens": 1, "messages": ' + b"[" * TOO_DEEP + b"]" * TOO_DEEP + b"}"),
    (
        "nesting too deep in a tool input",
        b'{"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "metadata": '
        + b'{"a":' * TOO_DEEP
        + b"1"
        + b"}" * TOO_DEEP
        + b"}",
    ),
]
HI = b'"messages": [{"role": "user", "content": "hi"}]'
RAW_ODD: list[tuple[str, bytes]] = [
    ("NaN temperature", b'{"model": "claude-opus-4-8", "max_tokens": 5, "temperature": NaN, ' + HI + b"}"),
    (
        "lone surrogate",
        b'{"model": "claude-opus-4-8", "max_tokens": 5, "messages": [{"role": "user", "content": "\\ud800"}]}',
    ),
    ("duplicate keys", b'{"model": "x", "model": "claude-opus-4-8", "max_tokens": 5, ' + HI + b"}"),
    ("a BOM first", b'\xef\xbb\xbf{"model": "claude-opus-4-8", "max_tokens": 5, ' + HI + b"}"),
    ("a huge integer", b'{"model": "claude-opus-4-8", "max_tokens": 1' + b"0" * 400 + b", " + HI + b"}"),
]


def _apply(body: dict[str, Any], mutation: Any) -> dict[str, Any]:
    kind, path, value = mutation
    copy: dict[str, Any] = json.loads(json.dumps(body))
    target: Any = copy
    for key in path[:-1]:
        target = target[key]
    if kind == "drop":
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return copy


def _mutated(body: dict[str, Any], named: tuple[str, Any], expect: Expect) -> ClientBody:
    why, mutation = named
    return ClientBody(json.dumps(_apply(body, mutation)).encode(), expect, why, mutation[1][0])


def invalid_requests() -> st.SearchStrategy[ClientBody]:
    """A client body ccproxy must refuse (`refused`) or may answer (`any`): a valid request with one mutation, or
    bytes that are no JSON object."""
    return st.one_of(
        st.builds(_mutated, messages_requests(), st.sampled_from(REFUSED), st.just("refused")),
        st.builds(_mutated, messages_requests(), st.sampled_from(ODD), st.just("any")),
        st.builds(lambda named: ClientBody(named[1], "refused", named[0]), st.sampled_from(RAW_REFUSED)),
        st.builds(lambda named: ClientBody(named[1], "any", named[0]), st.sampled_from(RAW_ODD)),
        st.builds(_typo, messages_requests(), json_values),
    )


def _typo(body: dict[str, Any], value: Any) -> ClientBody:
    """Any field of the body's top level replaced by any JSON value: refused or answered, never a failure."""
    name = sorted(body)[len(json.dumps(value)) % len(body)]
    return ClientBody(json.dumps({**body, name: value}).encode(), "any", f"{name} replaced by {value!r}", name)
