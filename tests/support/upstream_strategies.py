"""Hypothesis strategies for what an OpenAI-compatible upstream may send: completions and chunk streams in valid
shapes with random type substitutions at every field, arbitrary JSON, and SSE bodies cut and split anywhere."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call", "error", "eos", "")

# Any JSON value, small.
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the valid value, sometimes any JSON value in its place."""
    return st.one_of(valid, valid, valid, json_values)


def rarely(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually None (absent in effect), sometimes `value`."""
    return st.one_of(st.none(), st.none(), st.none(), st.none(), value)


texts = st.sampled_from(["Hello", " ", "\n", "Par", "is.", "\U0001f600", "\ud83d", ""]) | st.text(
    min_size=1, max_size=8
)
names = st.sampled_from(["Bash", "Read", "get_weather", "", "mcp__x__" + "y" * 70])
arguments = st.one_of(
    st.sampled_from(['{"command": "ls"}', "", "{}", '{"a": ', '"{\\"a\\": 1}"', "[1, 2]", "null", "}"]),
    st.builds(json.dumps, json_values),
    st.text(max_size=8),
)
finish_reasons = st.sampled_from(FINISH_REASONS)
errors = st.fixed_dictionaries(
    {}, optional={"code": field(st.sampled_from([429, 502, "503", "server_error", 200])), "message": field(texts)}
)
usages = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": field(st.integers(0, 10**6)),
        "completion_tokens": field(st.integers(0, 10**6)),
        "prompt_tokens_details": field(
            st.fixed_dictionaries(
                {},
                optional={
                    "cached_tokens": field(st.integers(0, 10**6)),
                    "cache_write_tokens": field(st.integers(0, 10**6)),
                },
            )
        ),
    },
)
functions = st.fixed_dictionaries({}, optional={"name": field(names), "arguments": field(arguments)})
tool_calls = st.fixed_dictionaries(
    {},
    optional={
        "index": field(st.integers(0, 2)),
        "id": field(st.sampled_from(["call_1", "call_2", "call_3", ""])),
        "type": field(st.just("function")),
        "function": field(functions),
    },
)
details = st.fixed_dictionaries(
    {},
    optional={
        "type": field(st.sampled_from(["reasoning.text", "reasoning.summary", "reasoning.encrypted"])),
        "text": field(texts),
        "summary": field(texts),
        "signature": field(st.sampled_from(["sig==", ""])),
        "index": field(st.integers(0, 1)),
    },
)
content_parts = st.lists(
    st.fixed_dictionaries({}, optional={"type": field(st.just("text")), "text": field(texts)}), max_size=2
)
# The fields a message (non-stream) or a delta (stream) may carry.
message_fields = {
    "role": field(st.just("assistant")),
    "content": field(st.one_of(texts, st.none(), content_parts)),
    "refusal": field(st.one_of(st.none(), texts)),
    "reasoning_content": field(texts),
    "reasoning": field(texts),
    "reasoning_details": field(st.lists(details, max_size=2)),
    "tool_calls": field(st.lists(tool_calls, max_size=3)),
    "function_call": rarely(field(functions)),
}
messages = st.fixed_dictionaries({}, optional=message_fields)


def _completion_choice() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"message": field(messages), "finish_reason": field(finish_reasons)},
        optional={"index": field(st.sampled_from([0, 0, 0, 1])), "error": rarely(errors)},
    )


structured_completions = st.fixed_dictionaries(
    {"object": st.just("chat.completion"), "choices": field(st.lists(_completion_choice(), min_size=1, max_size=2))},
    optional={"usage": field(usages), "error": rarely(field(errors))},
)
# Non-stream chat completions: valid shapes with random substitutions, and arbitrary JSON objects.
completions = st.one_of(
    structured_completions,
    structured_completions,
    structured_completions,
    st.dictionaries(st.sampled_from(["choices", "usage", "error", "id", "model"]), json_values, max_size=3),
)


def _chunk(delta: st.SearchStrategy[Any], finish: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    choice = st.fixed_dictionaries({"index": field(st.just(0)), "delta": delta, "finish_reason": finish})
    return st.fixed_dictionaries(
        {
            "id": st.just("chatcmpl-1"),
            "object": st.just("chat.completion.chunk"),
            "choices": field(st.lists(choice, min_size=1, max_size=2)),
        },
        optional={"usage": rarely(field(usages)), "error": rarely(rarely(errors))},
    )


# Chunks: most continue text or tool arguments (the translator's fast paths), the rest are anything.
plain_text_chunks = _chunk(st.fixed_dictionaries({"content": texts}), st.none())
plain_argument_chunks = _chunk(
    st.builds(
        lambda index, fragment: {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]},
        st.integers(0, 2),
        arguments,
    ),
    st.none(),
)
tool_head_chunks = _chunk(
    st.builds(
        lambda index, call_id, name: {
            "tool_calls": [
                {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
            ]
        },
        st.integers(0, 2),
        st.sampled_from(["call_1", "call_2", "call_3"]),
        names,
    ),
    st.none(),
)
any_chunks = _chunk(field(st.fixed_dictionaries({}, optional=message_fields)), rarely(field(finish_reasons)))
finish_chunks = _chunk(st.just({}), finish_reasons)
usage_chunks = st.fixed_dictionaries({"id": st.just("chatcmpl-1"), "choices": st.just([]), "usage": field(usages)})
random_objects = st.dictionaries(st.sampled_from(["choices", "usage", "error", "id"]), json_values, max_size=3)

# One SSE payload: a chunk object, `[DONE]`, or any JSON value.
payloads = st.one_of(
    plain_text_chunks,
    plain_text_chunks,
    plain_text_chunks,
    plain_argument_chunks,
    plain_argument_chunks,
    tool_head_chunks,
    any_chunks,
    any_chunks,
    random_objects,
    json_values,
)
chunk_lists = st.lists(
    st.one_of(
        plain_text_chunks,
        plain_argument_chunks,
        tool_head_chunks,
        any_chunks,
        finish_chunks,
        usage_chunks,
        random_objects,
    ),
    max_size=14,
)
endings = st.sampled_from(["finish-usage-done", "finish-done", "finish", "done", "none"])


def _plain(delta: dict[str, Any]) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}


def _pieces(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(cut % (len(text) + 1) for cut in cuts)})
    return [text[start:end] for start, end in itertools.pairwise(bounds) if end > start]


@st.composite
def answer_chunks(draw: st.DrawFn) -> list[Any]:
    """The chunks of a realistic answer (reasoning, text, tool calls with argument fragments), some of them
    replaced by a mutated copy or by anything at all."""
    cuts = st.lists(st.integers(0, 40), max_size=4)
    chunks: list[Any] = [_plain({"role": "assistant", "content": ""})]
    for piece in _pieces(draw(st.sampled_from(["", "Let me think.", "Hmm "])), draw(cuts)):
        chunks.append(_plain({"reasoning_content": piece}))
    for piece in _pieces(draw(st.sampled_from(["", "The capital of France is Paris.", " \n", "Ok"])), draw(cuts)):
        chunks.append(_plain({"content": piece}))
    for index in range(draw(st.integers(0, 2))):
        head = {
            "index": index,
            "id": f"call_{index}",
            "type": "function",
            "function": {"name": draw(names), "arguments": ""},
        }
        chunks.append(_plain({"tool_calls": [head]}))
        for piece in _pieces(draw(arguments), draw(cuts)):
            chunks.append(_plain({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(chunks)))
        chunks.insert(position, draw(payloads))
    for position in draw(st.lists(st.integers(0, len(chunks) - 1), max_size=2)):
        chunks[position] = draw(_mutated(chunks[position]))
    return chunks


def _mutated(chunk: Any) -> st.SearchStrategy[Any]:
    """`chunk` with one value somewhere in it replaced by any JSON value."""
    paths: list[tuple[Any, ...]] = []

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in items:
            walk(child, (*path, key))

    walk(chunk, ())

    def replace(path: tuple[Any, ...], new: Any) -> Any:
        if not path:
            return new
        copy = json.loads(json.dumps(chunk))
        target = copy
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = new
        return copy

    return st.builds(replace, st.sampled_from(paths), json_values)


@dataclass(frozen=True)
class UpstreamStream:
    """An SSE body, where it was cut (None = not cut) and the offsets where reads end."""

    body: bytes
    # The payloads whose bytes start before the cut.
    sent: tuple[Any, ...]

    def ends_the_answer(self) -> bool:
        """Whether a payload the translator may take as the end arrived: `[DONE]` or a finish reason (an
        over-approximation: any choice's non-empty string finish_reason counts)."""
        for payload in self.sent:
            if payload == "[DONE]":
                return True
            choices = payload.get("choices") if isinstance(payload, dict) else None
            for choice in choices if isinstance(choices, list) else ():
                reason = choice.get("finish_reason") if isinstance(choice, dict) else None
                if isinstance(reason, str) and reason:
                    return True
        return False


def _event(payload: Any, newline: str) -> str:
    data = payload if payload == "[DONE]" else json.dumps(payload)
    return f"data: {data}{newline}{newline}"


@st.composite
def upstream_streams(draw: st.DrawFn) -> UpstreamStream:
    """An SSE body of random payloads and ending, maybe with comments, CRLF line ends, or cut anywhere."""
    items: list[Any] = draw(st.one_of(answer_chunks(), st.lists(payloads, min_size=1, max_size=16)))
    ending = draw(endings)
    if ending.startswith("finish"):
        items.append(draw(finish_chunks))
    if "usage" in ending:
        items.append(draw(usage_chunks))
    if "done" in ending:
        items.append("[DONE]")
    newline = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    pieces: list[tuple[bytes, Any]] = []
    if draw(st.booleans()):
        pieces.append(((": OPENROUTER PROCESSING" + newline + newline).encode(), None))
    pieces.extend((_event(item, newline).encode(), item) for item in items)
    body = b"".join(piece for piece, _ in pieces)
    cut = draw(st.one_of(st.none(), st.none(), st.none(), st.integers(0, len(body))))
    sent: list[Any] = []
    offset = 0
    for piece, item in pieces:
        if cut is not None and offset >= cut:
            break
        if item is not None:
            sent.append(item)
        offset += len(piece)
    return UpstreamStream(body if cut is None else body[:cut], tuple(sent))


@st.composite
def splits(draw: st.DrawFn, body: bytes) -> list[bytes]:
    """`body` cut into reads at random offsets."""
    offsets = sorted(set(draw(st.lists(st.integers(0, len(body)), max_size=6))))
    bounds = [0, *offsets, len(body)]
    return [body[start:end] for start, end in itertools.pairwise(bounds) if end > start]
