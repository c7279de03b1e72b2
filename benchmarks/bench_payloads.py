"""The payloads every benchmark uses: Anthropic requests, an OpenAI completion and a 100-chunk OpenAI stream."""

from __future__ import annotations

import copy
import itertools
import json
from functools import cache
from pathlib import Path
from typing import Any

import ujson

from ccproxy.core.plan import ModelCapabilities, RequestPlan
from ccproxy.core.toolnames import ToolNameMap

REPO_ROOT = Path(__file__).resolve().parents[1]
# The tool_result turn of a Bash call with every tool declared in full: ~78 KB, non-ASCII text and an emoji.
CLAUDE_CODE_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "claude-code" / "tool_bash_all_tools.01.json"

UPSTREAM_MODEL = "gpt-5"
STREAM_CHUNKS = 100
# How the openai plugin answers `capabilities("gpt-5")` for a non-api.openai.com base URL (the benchmark setup).
GPT5_CAPABILITIES = ModelCapabilities(
    max_tokens_param="max_completion_tokens",
    system_role="developer",
    supports_temperature=False,
    supports_top_p=False,
    supports_stop=False,
    max_output_tokens=128000,
    supports_reasoning=True,
)

SMALL_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
}

_COMPLETION_ID = "chatcmpl-Bench0123456789abcdefABCDEF"
_CREATED = 1754500000
_FINGERPRINT = "fp_bench01"
_TOOL_CALL_ID = "call_Bench0123456789abcdefAB"
_TOOL_ARGUMENTS = {
    "command": "ls -la /home/dev/project && git status --short && git log --oneline -5",
    "description": "List the project files, show the working tree status and the last five commits",
}
_USAGE = {
    "prompt_tokens": 14219,
    "completion_tokens": 187,
    "total_tokens": 14406,
    "prompt_tokens_details": {"cached_tokens": 12800, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 64,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
# Streamed text: 69 content deltas of one to three tokens each, as models send them.
_TEXT_PIECES = 69
_PROSE = (
    "I'll look at the project layout first, then check the git status so we know which files changed "
    "and whether anything is staged. After that I can run the tests and read the failing ones carefully. "
    "Let me start with a listing of the working directory and a short log of the latest commits now."
)
_ARGUMENT_PIECES = 27


def dumps(value: Any) -> str:
    """Compact JSON the way the proxy writes it."""
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False)


def small_request(*, stream: bool = False) -> dict[str, Any]:
    return {**copy.deepcopy(SMALL_REQUEST), "stream": stream}


@cache
def _claude_code_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(CLAUDE_CODE_FIXTURE.read_text(encoding="utf-8"))["request"]["body"]
    return body


def claude_code_request(*, stream: bool = False) -> dict[str, Any]:
    """The ~78 KB body Claude Code sent for its tool_result turn (tool_bash_all_tools.01), with the stream flag set."""
    return {**copy.deepcopy(_claude_code_body()), "stream": stream}


def request_plan(*, stream: bool) -> RequestPlan:
    """What the pipeline decides for a gpt-5 upstream; a fresh ToolNameMap per request, as the pipeline does."""
    return RequestPlan(
        upstream_model=UPSTREAM_MODEL, capabilities=GPT5_CAPABILITIES, stream=stream, tool_names=ToolNameMap()
    )


def _text_pieces() -> list[str]:
    words = _PROSE.split()
    pieces = [w + " " for w in words]
    while len(pieces) < _TEXT_PIECES:
        pieces += pieces
    return pieces[:_TEXT_PIECES]


def _argument_pieces() -> list[str]:
    text = dumps(_TOOL_ARGUMENTS)
    cuts = [len(text) * i // _ARGUMENT_PIECES for i in range(_ARGUMENT_PIECES + 1)]
    return [text[start:end] for start, end in itertools.pairwise(cuts)]


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": _COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": "gpt-5-2025-08-07",
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        "usage": None,
    }


def stream_chunks() -> list[dict[str, Any]]:
    """100 `chat.completion.chunk` dicts: role, 69 text deltas, a Bash tool call in 28 pieces, finish, usage."""
    chunks = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [_chunk({"content": piece}) for piece in _text_pieces()]
    first_call = {
        "index": 0,
        "id": _TOOL_CALL_ID,
        "type": "function",
        "function": {"name": "Bash", "arguments": ""},
    }
    chunks.append(_chunk({"tool_calls": [first_call]}))
    chunks += [_chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in _argument_pieces()]
    chunks.append(_chunk({}, "tool_calls"))
    usage_chunk = {**_chunk({}), "choices": [], "usage": _USAGE}
    chunks.append(usage_chunk)
    assert len(chunks) == STREAM_CHUNKS, len(chunks)
    return chunks


def stream_events_bytes() -> list[bytes]:
    """The stream as the upstream writes it: one `data:` event per chunk, then `data: [DONE]`."""
    return [f"data: {dumps(chunk)}\n\n".encode() for chunk in stream_chunks()] + [b"data: [DONE]\n\n"]


def completion() -> dict[str, Any]:
    """The non-stream completion with the same content as the stream."""
    message = {
        "role": "assistant",
        "content": "".join(_text_pieces()).rstrip(),
        "refusal": None,
        "annotations": [],
        "tool_calls": [
            {
                "id": _TOOL_CALL_ID,
                "type": "function",
                "function": {"name": "Bash", "arguments": dumps(_TOOL_ARGUMENTS)},
            }
        ],
    }
    return {
        "id": _COMPLETION_ID,
        "object": "chat.completion",
        "created": _CREATED,
        "model": "gpt-5-2025-08-07",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}],
        "usage": _USAGE,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


_CACHE_MARK = {"type": "ephemeral"}


def conversation_turns(pairs: int = 60, turns: int = 2, session: int = 0) -> list[dict[str, Any]]:
    """Consecutive turns of a long Claude Code conversation: the 78 KB request's history (its first message naming
    `session`, so that sessions differ) followed by `pairs` Bash calls and their ~1 KB results (about 1.6 KB of
    JSON a pair); each next turn appends an answer and a question and moves Claude Code's cache marker from the
    last message to the new one."""
    body = claude_code_request()
    messages = body["messages"]
    messages[0]["content"][-1]["text"] += f" (session {session})"
    for number in range(pairs):
        call_id = f"toolu_01bench{number:016d}"
        command = {"command": f"git log --oneline -n 20 -- src/module_{number}.py", "description": "Recent commits"}
        output = "\n".join(
            f"{number:04d}{line:03d}a fix: the {line}th change to module {number} — ✓" for line in range(20)
        )
        messages.append(
            {"role": "assistant", "content": [{"type": "tool_use", "id": call_id, "name": "Bash", "input": command}]}
        )
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": output}]}
        )
    messages[-1]["content"][-1]["cache_control"] = dict(_CACHE_MARK)
    made = [body]
    for number in range(1, turns):
        turn = copy.deepcopy(made[-1])
        turn["messages"][-1]["content"][-1].pop("cache_control")
        answer = {"type": "text", "text": f"The log shows the fixes ({number})."}
        question = {"type": "text", "text": f"Now run test group {number}.", "cache_control": dict(_CACHE_MARK)}
        turn["messages"] += [{"role": "assistant", "content": [answer]}, {"role": "user", "content": [question]}]
        made.append(turn)
    return made
