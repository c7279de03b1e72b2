"""Upstream answers sorted into OpenAI cases by shape: the repository's own (tests/fixtures/upstream) and, when the
shared folder is beside the checkout, the recorded exchanges of ../shared/fixtures/recorded-upstream."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.fixtures import SHARED_PREFIX, UPSTREAM, nonempty, shared_dir

# libyaml is ~10x faster than the pure-Python loader on these 1.7 MB of cassettes.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# The family folders of tests/fixtures/upstream and the APIs they stand for.
FAMILY_URLS = {
    "openai": "https://api.openai.com/v1/chat/completions",
    "deepseek": "https://api.deepseek.com/chat/completions",
    "openrouter": "https://openrouter.ai/api/v1/chat/completions",
    "anthropic": "https://api.anthropic.com/v1/messages",
}


@dataclass(frozen=True)
class Exchange:
    """One request/response pair: an in-repo case file, or one interaction of a shared go-vcr cassette."""

    cassette: str
    interaction: int
    url: str
    request: dict[str, Any]
    status: int
    body: str
    shared: bool = False

    @property
    def id(self) -> str:
        if self.shared:
            return f"{SHARED_PREFIX}{self.cassette.removesuffix('.yaml')}#{self.interaction}"
        return self.cassette

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
def repo_exchanges() -> tuple[Exchange, ...]:
    """Every case of tests/fixtures/upstream: `<case>.request.json` with its `.sse` and/or `.json` answer."""
    found: list[Exchange] = []
    for request_path in sorted(UPSTREAM.rglob("*.request.json")):
        case = request_path.name.removesuffix(".request.json")
        family = request_path.parent.name
        request = json.loads(request_path.read_text(encoding="utf-8"))
        for suffix in (".sse", ".json"):
            answer = request_path.with_name(case + suffix)
            if answer.exists():
                body = answer.read_bytes().decode("utf-8")
                found.append(Exchange(f"{family}/{case}{suffix}", 0, FAMILY_URLS[family], request, 200, body))
    return tuple(nonempty(found, UPSTREAM))


def _cassette_exchanges(folder: Path) -> list[Exchange]:
    found: list[Exchange] = []
    for path in sorted(folder.rglob("*.yaml")):
        cassette = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        for number, interaction in enumerate(cassette.get("interactions") or []):
            request, response = interaction["request"], interaction["response"]
            found.append(
                Exchange(
                    cassette=path.relative_to(folder).as_posix(),
                    interaction=number,
                    url=request.get("url", ""),
                    request=_json_object(request.get("body") or "") or {},
                    status=int(response.get("code") or 0),
                    body=response.get("body") or "",
                    shared=True,
                )
            )
    return found


@functools.cache
def shared_exchanges() -> tuple[Exchange, ...]:
    """Every interaction of every shared cassette, in path order; none without the shared folder."""
    folder = shared_dir("recorded-upstream")
    return tuple(_cassette_exchanges(folder)) if folder is not None else ()


def exchanges() -> tuple[Exchange, ...]:
    return repo_exchanges() + shared_exchanges()


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


def in_band_error(value: dict[str, Any]) -> Any:
    """The error an OpenAI-format chunk or body carries: top-level `error`, or a choice ending with
    `finish_reason: "error"` (and its `error`, if any); None when there is none."""
    if value.get("error"):
        return value["error"]
    for choice in value.get("choices") or []:
        if isinstance(choice, dict) and choice.get("finish_reason") == "error":
            return choice.get("error") or {}
    return None


def _sse_payloads(exchange: Exchange) -> list[str]:
    return naive_sse_payloads(exchange.raw) if "data:" in exchange.body else []


def is_openai_stream(exchange: Exchange) -> bool:
    """Raw SSE of `chat.completion.chunk` objects (Anthropic SSE has typed events, Gemini `candidates`)."""
    payloads = _sse_payloads(exchange)
    return bool(payloads) and _is_openai_chunk(payloads[0])


def stream_error(exchange: Exchange) -> Any:
    """The in-band error of an OpenAI stream (the first chunk that carries one), else None."""
    for payload in _sse_payloads(exchange):
        chunk = _json_object(payload)
        error = in_band_error(chunk) if chunk is not None else None
        if error is not None:
            return error
    return None


def is_anthropic_stream(exchange: Exchange) -> bool:
    """Native Anthropic SSE, the shape a translated stream should have."""
    payloads = _sse_payloads(exchange)
    first = _json_object(payloads[0]) if payloads else None
    return first is not None and first.get("type") == "message_start"


def is_openai_completion(exchange: Exchange) -> bool:
    """A successful non-stream chat completion."""
    body = _json_object(exchange.body)
    return (
        body is not None
        and isinstance(body.get("choices"), list)
        and exchange.status < 400
        and in_band_error(body) is None
    )


def is_openai_error(exchange: Exchange) -> bool:
    """An error answer to an OpenAI-format request, whatever its status: `{"error": {...}}` without Anthropic's
    `type: error`, or a completion whose choice ended with `finish_reason: "error"`.

    Gemini errors look the same, so the request must be OpenAI-shaped too (`messages`, not `contents`).
    """
    body = _json_object(exchange.body)
    if body is None or "messages" not in exchange.request or body.get("type") == "error":
        return False
    error = in_band_error(body)
    return isinstance(error, dict)


def openai_streams() -> list[Exchange]:
    """Streams that end normally (no in-band error)."""
    return [exchange for exchange in exchanges() if is_openai_stream(exchange) and stream_error(exchange) is None]


def openai_error_streams() -> list[Exchange]:
    """Streams that carry an in-band error after some content."""
    return [exchange for exchange in exchanges() if is_openai_stream(exchange) and stream_error(exchange) is not None]


def anthropic_streams() -> list[Exchange]:
    return [exchange for exchange in exchanges() if is_anthropic_stream(exchange)]


def openai_completions() -> list[Exchange]:
    return [exchange for exchange in exchanges() if is_openai_completion(exchange)]


def openai_errors() -> list[Exchange]:
    return [exchange for exchange in exchanges() if is_openai_error(exchange)]
