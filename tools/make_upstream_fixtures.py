"""Write tests/fixtures/upstream: upstream answers per wire family, as each vendor puts them on the wire.

    .venv/bin/python -m tools.make_upstream_fixtures [--out DIR]

Written from the wire facts of ../shared/spec/wire.md 4.3 and 4.7-4.9 and checked against the recorded exchanges of
../shared/fixtures/recorded-upstream (same field order, framing, comments and quirks). Each case is
`<family>/<case>.request.json` (the OpenAI request, `stream: true`), `<case>.sse` (the raw stream body) and, for most
cases, `<case>.json` (the non-stream completion answering the same request sent with `stream: false`). All answers
are HTTP 200, including the ones that carry an error: that is how OpenRouter reports failures after the status line.
tests/core/test_upstream_fixtures.py fails when the committed files differ from what this script writes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "upstream"
CREATED = 1764000000

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather for a city", "parameters": WEATHER_PARAMETERS},
}
BASH_TOOL = {
    "type": "function",
    "function": {
        "name": "Bash",
        "description": "Run a shell command",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
            "required": ["command"],
        },
    },
}


def compact(value: Any) -> str:
    """JSON as these vendors write it: no spaces, non-ASCII as raw UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sse(payloads: Iterable[Any], *, comments: Iterable[str] = (), done: bool = True) -> str:
    """An SSE body: optional `:` comment lines first (keep-alives), one `data:` event per payload, `[DONE]`."""
    events = [f": {comment}\n\n" for comment in comments]
    events += [f"data: {compact(payload)}\n\n" for payload in payloads]
    if done:
        events.append("data: [DONE]\n\n")
    return "".join(events)


def request(model: str, user: str, tools: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": user},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }
    if tools:
        body["tools"] = tools
        body["tool_choice"] = "auto"
    return body


class Case:
    """One fixture case: its request, its stream body and, when it has one, its non-stream answer."""

    def __init__(self, family: str, name: str, request_body: dict[str, Any], stream: str, completion: Any) -> None:
        self.family = family
        self.name = name
        self.request = request_body
        self.stream = stream
        self.completion = completion

    def files(self) -> dict[str, str]:
        found = {
            f"{self.family}/{self.name}.request.json": json.dumps(self.request, indent=1, ensure_ascii=False) + "\n",
            f"{self.family}/{self.name}.sse": self.stream,
        }
        if self.completion is not None:
            found[f"{self.family}/{self.name}.json"] = json.dumps(self.completion, indent=1, ensure_ascii=False) + "\n"
        return found


# ------------------------------------------------------------------------------------------------- OpenAI


class OpenAIChunks:
    """`chat.completion.chunk` objects of api.openai.com (field order, `usage: null`, `obfuscation` padding)."""

    def __init__(self, completion_id: str, model: str) -> None:
        self.id = completion_id
        self.model = model
        self.pad = 0

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        self.pad = (self.pad + 5) % 13
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_f33640a400",
            "usage": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            "obfuscation": "Zq7xWmP4kLr2v"[: self.pad],
        }

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        chunk = self.chunk({})
        chunk["choices"] = []
        chunk["usage"] = usage
        return chunk

    def completion(self, message: dict[str, Any], finish_reason: str, usage: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": CREATED,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_f33640a400",
        }


def openai_usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


TEXT_PIECES = ["Grüße", " aus", " Tōkyō", " 東京", ": it", " is", " sunny", " ☀️", " and", " 21", " °C", "."]


def openai_text() -> Case:
    """Plain text with multi-byte UTF-8 (2, 3 and 4 bytes) split across chunks, then the usage chunk."""
    gen = OpenAIChunks("chatcmpl-CkText0000000000000000000001", "gpt-4o-2024-08-06")
    usage = openai_usage(27, 14)
    chunks = [gen.chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [gen.chunk({"content": piece}) for piece in TEXT_PIECES]
    chunks += [gen.chunk({}, "stop"), gen.usage_chunk(usage)]
    completion = gen.completion({"content": "".join(TEXT_PIECES)}, "stop", usage)
    return Case(
        "openai", "text", request("gpt-4o", "Greet me and tell me the weather in Tokyo."), sse(chunks), completion
    )


PARIS_ARGS = '{"city": "Paris", "unit": "celsius"}'
TOKYO_ARGS = '{"city": "Tokyo", "unit": "celsius"}'


def _fragments(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def openai_parallel_tools_interleaved() -> Case:
    """Two calls whose starts and argument fragments alternate by `index`, one chunk carrying both indices."""
    gen = OpenAIChunks("chatcmpl-CkParallel00000000000000000002", "gpt-4o-2024-08-06")
    usage = openai_usage(118, 52)
    calls = [("call_Paris0000000000000000000A", PARIS_ARGS), ("call_Tokyo0000000000000000000B", TOKYO_ARGS)]
    chunks = [gen.chunk({"role": "assistant", "content": None, "refusal": None})]
    for index, (call_id, _) in enumerate(calls):
        start = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
        chunks.append(gen.chunk({"tool_calls": [start]}))
    paris, tokyo = _fragments(PARIS_ARGS, 7), _fragments(TOKYO_ARGS, 7)
    for position in range(max(len(paris), len(tokyo))):
        pieces = [(0, paris), (1, tokyo)] if position % 2 == 0 else [(1, tokyo), (0, paris)]
        entries = [
            {"index": index, "function": {"arguments": fragments[position]}}
            for index, fragments in pieces
            if position < len(fragments)
        ]
        if position == 2:
            chunks.append(gen.chunk({"tool_calls": entries}))  # both indices in one chunk
        else:
            chunks += [gen.chunk({"tool_calls": [entry]}) for entry in entries]
    chunks += [gen.chunk({}, "tool_calls"), gen.usage_chunk(usage)]
    tool_calls = [
        {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
        for call_id, arguments in calls
    ]
    completion = gen.completion({"content": None, "tool_calls": tool_calls}, "tool_calls", usage)
    body = request("gpt-4o", "Weather in Paris and in Tokyo, please.", [WEATHER_TOOL], parallel_tool_calls=True)
    return Case("openai", "parallel_tools_interleaved", body, sse(chunks), completion)


def openai_cached_usage() -> Case:
    """gpt-5 with a prompt mostly served from the cache: `prompt_tokens_details.cached_tokens` in the usage chunk."""
    gen = OpenAIChunks("chatcmpl-CkCached000000000000000000003", "gpt-5-2025-08-07")
    usage = openai_usage(14219, 187, cached=12800, reasoning=64)
    text = ["The", " tests", " pass", " on", " both", " cores", "."]
    chunks = [gen.chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [gen.chunk({"content": piece}) for piece in text]
    chunks += [gen.chunk({}, "stop"), gen.usage_chunk(usage)]
    completion = gen.completion({"content": "".join(text)}, "stop", usage)
    body = request("gpt-5", "Do the tests pass?", max_completion_tokens=4096, reasoning_effort="low")
    return Case("openai", "cached_usage", body, sse(chunks), completion)


def openai_empty_choices() -> Case:
    """Azure OpenAI: a first chunk with `choices: []` and `prompt_filter_results`, per-choice filter results, and
    the usage chunk with `choices: []` again."""
    gen = OpenAIChunks("chatcmpl-CkAzure0000000000000000000004", "gpt-4o-2024-11-20")
    safe = {
        category: {"filtered": False, "severity": "safe"} for category in ("hate", "self_harm", "sexual", "violence")
    }
    prompt_filter = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": safe}],
    }
    usage = openai_usage(31, 6)
    text = ["Hello", " from", " Azure", "!"]
    chunks: list[dict[str, Any]] = [prompt_filter, gen.chunk({"role": "assistant", "content": "", "refusal": None})]
    for piece in text:
        chunk = gen.chunk({"content": piece})
        chunk["choices"][0]["content_filter_results"] = safe
        chunks.append(chunk)
    chunks += [gen.chunk({}, "stop"), gen.usage_chunk(usage)]
    completion = gen.completion({"content": "".join(text)}, "stop", usage)
    completion["choices"][0]["content_filter_results"] = safe
    completion["prompt_filter_results"] = prompt_filter["prompt_filter_results"]
    return Case("openai", "empty_choices", request("gpt-4o", "Say hello."), sse(chunks), completion)


# ------------------------------------------------------------------------------------------------ DeepSeek


def deepseek_reasoning_tool() -> Case:
    """deepseek-reasoner: `reasoning_content` deltas, then content, then a tool call; keep-alive comments first and
    DeepSeek's cache counters (`prompt_cache_hit_tokens`) beside OpenAI's in the usage."""
    chunk_id = "5f3c2a9e-7d41-4b8e-9a0c-1e2f3a4b5c6d"

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": "deepseek-reasoner",
            "system_fingerprint": "fp_feb633d1f5_prod0820_fp8_kvcache",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    reasoning = ["The user", " wants the", " files listed.", " I should", " run `ls -la`", " with Bash."]
    text = ["Let me", " list the", " files."]
    arguments = '{"command": "ls -la", "description": "List files"}'
    usage = {
        "prompt_tokens": 412,
        "completion_tokens": 96,
        "total_tokens": 508,
        "prompt_tokens_details": {"cached_tokens": 384},
        "completion_tokens_details": {"reasoning_tokens": 61},
        "prompt_cache_hit_tokens": 384,
        "prompt_cache_miss_tokens": 28,
    }
    chunks = [chunk({"role": "assistant", "content": None, "reasoning_content": ""})]
    chunks += [chunk({"content": None, "reasoning_content": piece}) for piece in reasoning]
    chunks += [chunk({"content": piece, "reasoning_content": None}) for piece in text]
    start = {"index": 0, "id": "call_00_Deep0000000000000000000A", "type": "function"}
    chunks.append(chunk({"tool_calls": [{**start, "function": {"name": "Bash", "arguments": ""}}]}))
    chunks += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in _fragments(arguments, 9)]
    chunks.append(chunk({"content": ""}, "tool_calls"))
    usage_chunk = chunk({})
    usage_chunk["choices"] = []
    usage_chunk["usage"] = usage
    chunks.append(usage_chunk)
    completion = {
        "id": chunk_id,
        "object": "chat.completion",
        "created": CREATED,
        "model": "deepseek-reasoner",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "".join(text),
                    "reasoning_content": "".join(reasoning),
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": start["id"],
                            "type": "function",
                            "function": {"name": "Bash", "arguments": arguments},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": usage,
        "system_fingerprint": "fp_feb633d1f5_prod0820_fp8_kvcache",
    }
    body = request("deepseek-reasoner", "List the files here.", [BASH_TOOL], max_tokens=8192)
    return Case("deepseek", "reasoning_tool", body, sse(chunks, comments=["keep-alive", "keep-alive"]), completion)


# ---------------------------------------------------------------------------------------------- OpenRouter


class OpenRouterChunks:
    """OpenRouter's chunks for an Anthropic model: `gen-` ids, `provider`, `native_finish_reason`."""

    def __init__(self, generation_id: str, model: str = "anthropic/claude-4.5-sonnet-20250929") -> None:
        self.id = generation_id
        self.model = model

    def chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, native: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self.model,
            "provider": "Anthropic",
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "", "role": "assistant", **delta},
                    "finish_reason": finish_reason,
                    "native_finish_reason": native,
                }
            ],
        }

    def completion(
        self, message: dict[str, Any], finish_reason: str, native: str, usage: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        choice = {
            "index": 0,
            "logprobs": None,
            "finish_reason": finish_reason,
            "native_finish_reason": native,
            "message": {"role": "assistant", **message},
        }
        completion: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": CREATED,
            "model": self.model,
            "provider": "Anthropic",
            "system_fingerprint": None,
            "choices": [choice],
        }
        if usage is not None:
            completion["usage"] = usage
        return completion


def openrouter_usage(prompt: int, completion: int, reasoning: int, *, cached: int, written: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": 0.004218,
        "is_byok": False,
        "prompt_tokens_details": {
            "cached_tokens": cached,
            "cache_write_tokens": written,
            "audio_tokens": 0,
            "video_tokens": 0,
        },
        "cost_details": {
            "upstream_inference_cost": 0.004218,
            "upstream_inference_prompt_cost": 0.001893,
            "upstream_inference_completions_cost": 0.002325,
        },
        "completion_tokens_details": {"reasoning_tokens": reasoning, "image_tokens": 0, "audio_tokens": 0},
    }


THINKING_SIGNATURE = (
    "EqQCCkgIDRABGAIqQNq1Zk8yF0m3bR2fA6o4b9uT1s5VcX7eYw3hJ2gK8pL0nQ1rS4tU6vW9xZ2aB5cD8eF1gH4iJ7kL0mN3oP6qR9sEgx"
    "Wz1bC3dE5fG7hI9jK1lMn2oP4qR6sT8uV0wX2yZ4a6B8c0D2e4F6g8H0i2J4k6L8m0N2o4P6q8R0s2T4u6V8w0X2y4Z6a8B0c2D4e6F8gA=="
)
ENCRYPTED_REASONING = "EmwKAhgBEgy3va3pzixK9mZ0cFQaDC9wZWNpYWwtZGF0YRIwq8Yt1Zk0b2N4bGVhcm5pbmdfcmVkYWN0ZWQ="


def openrouter_reasoning_anthropic() -> Case:
    """Claude through OpenRouter with reasoning: `reasoning` mirrored by `reasoning_details` (reasoning.text, then
    the signature in a text-less detail, then a reasoning.encrypted one), text, a tool call, usage with cache
    reads and writes; `: OPENROUTER PROCESSING` comments first."""
    gen = OpenRouterChunks("gen-1764000000-OrThinking000000000001")
    text_detail = {"type": "reasoning.text", "format": "anthropic-claude-v1", "index": 0}
    reasoning = ["The user asks", " for Florence's", " weather; the", " get_weather tool", " takes a city."]
    chunks = [
        gen.chunk({"reasoning": piece, "reasoning_details": [{**text_detail, "text": piece}]}) for piece in reasoning
    ]
    chunks.append(gen.chunk({"reasoning_details": [{**text_detail, "signature": THINKING_SIGNATURE}]}))
    encrypted = {
        "type": "reasoning.encrypted",
        "data": ENCRYPTED_REASONING,
        "format": "anthropic-claude-v1",
        "index": 1,
    }
    chunks.append(gen.chunk({"reasoning_details": [encrypted]}))
    text = ["I'll check", " the weather", " in Florence."]
    chunks += [gen.chunk({"content": piece}) for piece in text]
    arguments = '{"city": "Florence", "unit": "celsius"}'
    call = {"index": 0, "id": "toolu_01OrWeather00000000000A", "type": "function"}
    chunks.append(
        gen.chunk({"content": None, "tool_calls": [{**call, "function": {"name": "get_weather", "arguments": ""}}]})
    )
    chunks += [
        gen.chunk({"content": None, "tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        for piece in _fragments(arguments, 11)
    ]
    chunks.append(gen.chunk({"reasoning": None}, "tool_calls", "tool_use"))
    usage = openrouter_usage(1893, 155, 58, cached=1536, written=212)
    last = gen.chunk({}, "tool_calls", "tool_use")
    last["usage"] = usage
    chunks.append(last)
    message = {
        "content": "".join(text),
        "refusal": None,
        "reasoning": "".join(reasoning),
        "tool_calls": [{**call, "function": {"name": "get_weather", "arguments": arguments}}],
        "reasoning_details": [
            {**text_detail, "text": "".join(reasoning), "signature": THINKING_SIGNATURE},
            encrypted,
        ],
    }
    completion = gen.completion(message, "tool_calls", "tool_use", usage)
    body = request(
        "anthropic/claude-sonnet-4.5",
        "What's the weather in Florence?",
        [WEATHER_TOOL],
        reasoning={"max_tokens": 2048},
        usage={"include": True},
    )
    stream = sse(chunks, comments=["OPENROUTER PROCESSING", "OPENROUTER PROCESSING"])
    return Case("openrouter", "reasoning_anthropic", body, stream, completion)


PROVIDER_ERROR = {
    "code": 502,
    "message": "Provider returned error",
    "metadata": {"provider_name": "Anthropic", "raw": "upstream connect error or disconnect/reset before headers"},
}
RATE_LIMIT_ERROR = {"code": 429, "message": "Rate limit exceeded: anthropic/claude-sonnet-4.5 is temporarily limited"}


def openrouter_error_event() -> Case:
    """Text, then a bare `{"error": {...}}` data event, then the connection closes (no `[DONE]`); the non-stream
    answer is the same error as a 200 JSON body."""
    gen = OpenRouterChunks("gen-1764000000-OrErrorEvent0000000002")
    chunks: list[dict[str, Any]] = [gen.chunk({"content": piece}) for piece in ["The capital", " of France", " is"]]
    chunks.append({"error": PROVIDER_ERROR})
    body = request("anthropic/claude-sonnet-4.5", "What is the capital of France?")
    stream = sse(chunks, comments=["OPENROUTER PROCESSING"], done=False)
    return Case("openrouter", "error_event", body, stream, {"error": PROVIDER_ERROR, "user_id": "user_2abcdEFGH"})


def openrouter_error_finish_reason() -> Case:
    """Text, then a chunk whose choice ends with `finish_reason: "error"` and carries the `error` (the form CCR
    handles), then `[DONE]`; the non-stream answer is a completion whose choice ends the same way."""
    gen = OpenRouterChunks("gen-1764000000-OrErrorFinish000000003")
    chunks = [gen.chunk({"content": piece}) for piece in ["Paris", " is the", " capital"]]
    failed = gen.chunk({}, "error", "error")
    failed["choices"][0]["error"] = RATE_LIMIT_ERROR
    chunks.append(failed)
    completion = gen.completion({"content": "", "refusal": None}, "error", "error")
    completion["choices"][0]["error"] = RATE_LIMIT_ERROR
    body = request("anthropic/claude-sonnet-4.5", "What is the capital of France?")
    return Case("openrouter", "error_finish_reason", body, sse(chunks), completion)


# ------------------------------------------------------------------------------------------------ Anthropic


def anthropic_thinking_tool() -> Case:
    """The native Anthropic stream for the OpenRouter case's prompt (wire.md 4.3): thinking with its signature,
    text, a tool_use whose input arrives as partial JSON, pings, cumulative usage in message_delta."""
    message: dict[str, Any] = {
        "id": "msg_01NativeThinking000000001",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 145,
            "cache_creation_input_tokens": 212,
            "cache_read_input_tokens": 1536,
            "output_tokens": 4,
        },
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": message}, {"type": "ping"}]

    def block(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events.extend({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas)
        events.append({"type": "content_block_stop", "index": index})

    reasoning = ["The user asks for Florence's weather;", " the get_weather tool takes a city."]
    block(
        0,
        {"type": "thinking", "thinking": "", "signature": ""},
        [{"type": "thinking_delta", "thinking": piece} for piece in reasoning]
        + [{"type": "signature_delta", "signature": THINKING_SIGNATURE}],
    )
    block(1, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "I'll check the weather in Florence."}])
    tool = {"type": "tool_use", "id": "toolu_01NativeWeather0000000A", "name": "get_weather", "input": {}}
    block(
        2,
        tool,
        [{"type": "input_json_delta", "partial_json": piece} for piece in ["", '{"city": "Flor', 'ence"}']],
    )
    usage = {"input_tokens": 145, "cache_creation_input_tokens": 212, "cache_read_input_tokens": 1536}
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {**usage, "output_tokens": 155},
        }
    )
    events.append({"type": "message_stop"})
    stream = "".join(f"event: {event['type']}\ndata: {compact(event)}\n\n" for event in events)
    body = {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "stream": True,
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather for a city",
                "input_schema": WEATHER_PARAMETERS,
            }
        ],
        "messages": [{"role": "user", "content": "What's the weather in Florence?"}],
    }
    return Case("anthropic", "thinking_tool", body, stream, None)


CASES = (
    openai_text,
    openai_parallel_tools_interleaved,
    openai_cached_usage,
    openai_empty_choices,
    deepseek_reasoning_tool,
    openrouter_reasoning_anthropic,
    openrouter_error_event,
    openrouter_error_finish_reason,
    anthropic_thinking_tool,
)


def fixture_files() -> dict[str, str]:
    """Every file this script writes, by path relative to the output folder."""
    files: dict[str, str] = {}
    for make in CASES:
        files.update(make().files())
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.make_upstream_fixtures", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    files = fixture_files()
    for stale in args.out.rglob("*"):
        if stale.is_file() and stale.name != "README.md" and stale.relative_to(args.out).as_posix() not in files:
            stale.unlink()
    for relative, text in files.items():
        path = args.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
    print(f"{len(files)} files written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
