"""The recorded upstream exchanges (shared/fixtures/recorded-upstream), sorted into OpenAI cases by shape."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
RECORDED = FIXTURES / "recorded-upstream"

# libyaml is ~10x faster than the pure-Python loader on these 1.7 MB of cassettes.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Exchange:
    """One request/response pair of a go-vcr cassette."""

    cassette: str
    interaction: int
    url: str
    request: dict[str, Any]
    status: int
    body: str

    @property
    def id(self) -> str:
        return f"{self.cassette.removesuffix('.yaml')}#{self.interaction}"

    @property
    def raw(self) -> bytes:
        return self.body.encode("utf-8")

    def tool_names(self) -> list[str]:
        """Function names offered in the (OpenAI-format) request."""
        tools = self.request.get("tools") or []
        return [tool["function"]["name"] for tool in tools if isinstance(tool.get("function"), dict)]


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@functools.cache
def exchanges() -> tuple[Exchange, ...]:
    """Every interaction of every cassette, in path order."""
    found: list[Exchange] = []
    for path in sorted(RECORDED.rglob("*.yaml")):
        cassette = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        for number, interaction in enumerate(cassette.get("interactions") or []):
            request, response = interaction["request"], interaction["response"]
            found.append(
                Exchange(
                    cassette=path.relative_to(RECORDED).as_posix(),
                    interaction=number,
                    url=request.get("url", ""),
                    request=_json_object(request.get("body") or "") or {},
                    status=int(response.get("code") or 0),
                    body=response.get("body") or "",
                )
            )
    return tuple(found)


def naive_sse_payloads(raw: bytes) -> list[str]:
    """A deliberately simple whole-body SSE reading, independent of ccproxy's decoder, to check it against.

    Normalises line ends, splits events on blank lines and joins each event's `data` values.
    """
    text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    payloads = []
    for block in text.split("\n\n"):
        data = [
            line[5:].removeprefix(" ") if line.startswith("data:") else ""
            for line in block.split("\n")
            if line.startswith("data:") or line == "data"
        ]
        if data and "\n".join(data):
            payloads.append("\n".join(data))
    return payloads


def _is_openai_chunk(payload: str) -> bool:
    chunk = _json_object(payload)
    # An in-stream error (OpenRouter) is `{"error": {...}}`; Anthropic's error events say `"type": "error"`.
    return chunk is not None and ("choices" in chunk or ("error" in chunk and "type" not in chunk))


def is_openai_stream(exchange: Exchange) -> bool:
    """Raw SSE of `chat.completion.chunk` objects (Anthropic SSE has typed events, Gemini `candidates`)."""
    payloads = naive_sse_payloads(exchange.raw) if "data:" in exchange.body else []
    return bool(payloads) and _is_openai_chunk(payloads[0])


def is_anthropic_stream(exchange: Exchange) -> bool:
    """Native Anthropic SSE, the shape a translated stream should have."""
    payloads = naive_sse_payloads(exchange.raw) if "data:" in exchange.body else []
    first = _json_object(payloads[0]) if payloads else None
    return first is not None and first.get("type") == "message_start"


def is_openai_completion(exchange: Exchange) -> bool:
    """A successful non-stream chat completion."""
    body = _json_object(exchange.body)
    return body is not None and isinstance(body.get("choices"), list) and exchange.status < 400


def is_openai_error(exchange: Exchange) -> bool:
    """An error answer to an OpenAI-format request: `{"error": {...}}` without Anthropic's `type: error`.

    Gemini errors look the same, so the request must be OpenAI-shaped too (`messages`, not `contents`).
    """
    body = _json_object(exchange.body)
    if body is None or "messages" not in exchange.request:
        return False
    return isinstance(body.get("error"), dict) and body.get("type") != "error"


def openai_streams() -> list[Exchange]:
    return [exchange for exchange in exchanges() if is_openai_stream(exchange)]


def anthropic_streams() -> list[Exchange]:
    return [exchange for exchange in exchanges() if is_anthropic_stream(exchange)]


def openai_completions() -> list[Exchange]:
    return [exchange for exchange in exchanges() if is_openai_completion(exchange)]


def openai_errors() -> list[Exchange]:
    return [exchange for exchange in exchanges() if is_openai_error(exchange)]
