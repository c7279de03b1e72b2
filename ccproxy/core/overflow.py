"""An upstream's "the prompt does not fit the context window" error, said the way Anthropic says it.

Claude Code starts its overflow handling on Anthropic's own wordings and treats anything else as a generic API
error. Two Anthropic messages exist, both HTTP 400 `invalid_request_error`:
- `prompt is too long: N tokens > M maximum` (the prompt alone is over the window); Claude Code reads N - M to
  decide how much to compact.
- ``input length and `max_tokens` exceed context limit: P + C > M, ...`` (the prompt fits, the requested output does
  not); Claude Code retries at once with `max_tokens` lowered to what is left.
Vendors say either in their own words, with or without the numbers. `OVERFLOW_PATTERNS` lists them, one row per
wording; the named groups are `limit` (the window), `prompt`, `prompt_extra` (added to `prompt`, e.g. image input),
`completion` (the requested output) and `total` (prompt + completion, when the split is not given).
"""

from __future__ import annotations

import re
from typing import Any

from ccproxy.core.jsoncodec import loads

PROMPT_TOO_LONG = "prompt is too long: {prompt} tokens > {limit} maximum"
OUTPUT_DOES_NOT_FIT = (
    "input length and `max_tokens` exceed context limit: {prompt} + {completion} > {limit}, "
    "decrease input length or `max_tokens` and try again"
)
WITHOUT_NUMBERS = "prompt is too long for the model's context window"
# How much of the upstream's own wording is quoted when it gives no numbers.
MAX_QUOTED = 300

# (vendor, pattern): the first match wins, so specific wordings come before the general ones they resemble.
OVERFLOW_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (vendor, re.compile(pattern, re.IGNORECASE))
    for vendor, pattern in (
        # Already Anthropic's (an Anthropic model behind OpenRouter or another gateway).
        ("anthropic", r"prompt is too long: (?P<prompt>\d+) tokens > (?P<limit>\d+) maximum"),
        (
            "anthropic",
            r"input length and `max_tokens` exceed context limit: (?P<prompt>\d+) \+ (?P<completion>\d+)"
            r" > (?P<limit>\d+)",
        ),
        # vLLM <= 0.10, DeepSeek, OpenAI: "This model's maximum context length is 8192 tokens. However, you
        # requested 9000 tokens (8000 in the messages, 1000 in the completion). Please reduce ..."
        (
            "vllm",
            r"maximum context length is (?P<limit>\d+) tokens\. However, you requested (?P<total>\d+) tokens"
            r" \((?P<prompt>\d+) in the messages, (?P<completion>\d+) in the completion\)",
        ),
        # OpenAI (older models): "... is 4097 tokens, however you requested 4231 tokens (3975 in your prompt;
        # 256 for the completion)."
        (
            "openai",
            r"maximum context length is (?P<limit>\d+) tokens, however you requested (?P<total>\d+) tokens"
            r" \((?P<prompt>\d+) in your prompt; (?P<completion>\d+) for the completion\)",
        ),
        # OpenAI: "This model's maximum context length is 128000 tokens. However, your messages resulted in
        # 130000 tokens (...)."
        (
            "openai",
            r"maximum context length is (?P<limit>\d+) tokens\. However, your messages resulted in"
            r" (?P<prompt>\d+) tokens",
        ),
        # vLLM >= 0.11: "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context
        # length is 4096 tokens and your request has 2778 input tokens (8000 > 4096 - 2778)."
        (
            "vllm",
            r"is too large: (?P<completion>\d+)\. This model's maximum context length is (?P<limit>\d+) tokens"
            r" and your request has (?P<prompt>\d+) input tokens",
        ),
        # vLLM >= 0.12 (also behind Cloudflare, Bedrock): "This model's maximum context length is 32768 tokens.
        # However, you requested 8192 output tokens and your prompt contains at least 24577 input tokens, ..."
        (
            "vllm",
            r"maximum context length is (?P<limit>\d+) tokens\. However, you requested (?P<completion>\d+) output"
            r" tokens and your prompt contains at least (?P<prompt>\d+) input tokens",
        ),
        # vLLM: "... However, your request has 4176 input tokens." / "... your prompt contains at least 4176 input
        # tokens." / "... you requested 4176 tokens in the messages, ..."
        (
            "vllm",
            r"maximum context length is (?P<limit>\d+) tokens\. However, (?:your request has|your prompt contains at"
            r" least) (?P<prompt>\d+) input tokens",
        ),
        (
            "vllm",
            r"maximum context length is (?P<limit>\d+) tokens\. However, you requested (?P<prompt>\d+) tokens in"
            r" the messages",
        ),
        # OpenRouter: "This endpoint's maximum context length is 163840 tokens. However, you requested about 180806
        # tokens (148806 of text input, 32000 in the output). Please reduce the length of either one, ..."
        (
            "openrouter",
            r"maximum context length is (?P<limit>\d+) tokens\. However, you requested about (?P<total>\d+) tokens"
            r" \((?P<prompt>\d+) of text input(?:, (?P<prompt_extra>\d+) of image input)?"
            r"(?:, (?P<completion>\d+) in the output)?\)",
        ),
        # llama.cpp server: "request (4476 tokens) exceeds the available context size (4096 tokens), try increasing
        # it"; older builds: "the request exceeds the available context size, try increasing it".
        (
            "llama.cpp",
            r"request \((?P<prompt>\d+) tokens\) exceeds the available context size \((?P<limit>\d+) tokens\)",
        ),
        ("llama.cpp", r"exceeds the available context size"),
        # Ollama: "prompt too long; exceeded max context length by 4021 tokens"; its native API:
        # "the input length exceeds the context length".
        ("ollama", r"prompt too long; exceeded (?:max )?context length"),
        ("ollama", r"the input length exceeds the context length"),
        # Mistral: "Prompt contains 240000 tokens, too large for model with 128000 maximum context length"
        (
            "mistral",
            r"prompt contains (?P<prompt>\d+) tokens.{0,40}too large for model with (?P<limit>\d+) maximum context"
            r" length",
        ),
        # Together: "The input (516368 tokens) is longer than the model's context length (262144 tokens)."
        (
            "together",
            r"input \((?P<prompt>\d+) tokens\) is longer than the model's context length \((?P<limit>\d+)"
            r" tokens\)",
        ),
        # OpenAI's newer wording (code context_length_exceeded): "Your input exceeds the context window of this
        # model."
        ("openai", r"input exceeds the context window"),
        # Whatever else still says it plainly.
        ("generic", r"maximum context length is (?P<limit>\d+) tokens"),
    )
)
# How many `{"error": ...}` wrappers are looked through.
MAX_NESTING = 8
# Error codes and types that mean overflow whatever the message says.
OVERFLOW_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error", "model_context_window_exceeded"})


def prompt_too_long(error: Any) -> str | None:
    """Anthropic's message for an upstream error object (or error text) that reports a context overflow; None for
    any other error. Untrusted input: any shape is accepted and nothing here raises."""
    for _ in range(MAX_NESTING):
        if isinstance(error, str):
            nested = _json_object(error)
            if nested is None:
                return _from_text(error, False)
            error = nested
        if not isinstance(error, dict):
            return None
        inner = error.get("error")
        if not inner or not isinstance(inner, (dict, str)):
            return _from_object(error)
        error = inner  # `{"error": {...}}` wrappers, sometimes several, sometimes as a JSON string
    return None


def _from_object(error: dict[str, Any]) -> str | None:
    structured = _llama_cpp_counts(error)
    if structured is not None:
        return structured
    code, kind = error.get("code"), error.get("type")
    flagged = (isinstance(code, str) and code in OVERFLOW_CODES) or (isinstance(kind, str) and kind in OVERFLOW_CODES)
    for text in _texts(error):
        found = _from_text(text, flagged)
        if found is not None:
            return found
    return WITHOUT_NUMBERS if flagged else None


def _from_text(text: str, flagged: bool) -> str | None:
    for _vendor, pattern in OVERFLOW_PATTERNS:
        match = pattern.search(text)
        if match is not None:
            return _message(match, text)
    return _quoted(text) if flagged else None


def _message(match: re.Match[str], text: str) -> str:
    numbers = {name: int(value) for name, value in match.groupdict().items() if value is not None}
    limit = numbers.get("limit")
    prompt = numbers.get("prompt")
    if prompt is not None:
        prompt += numbers.get("prompt_extra", 0)
    completion = numbers.get("completion", 0)
    if limit is not None and prompt is not None:
        if completion > 0 and prompt <= limit:
            return OUTPUT_DOES_NOT_FIT.format(prompt=prompt, completion=completion, limit=limit)
        return PROMPT_TOO_LONG.format(prompt=prompt, limit=limit)
    total = numbers.get("total")
    if limit is not None and total is not None:
        return PROMPT_TOO_LONG.format(prompt=total, limit=limit)
    return _quoted(text)


def _quoted(text: str) -> str:
    text = " ".join(text.split())[:MAX_QUOTED]
    return f"{WITHOUT_NUMBERS} ({text})" if text else WITHOUT_NUMBERS


def _llama_cpp_counts(error: dict[str, Any]) -> str | None:
    """llama.cpp's error carries the counts as fields: `n_prompt_tokens` and `n_ctx`."""
    prompt, limit = error.get("n_prompt_tokens"), error.get("n_ctx")
    if error.get("type") != "exceed_context_size_error" or not _count(prompt) or not _count(limit):
        return None
    return PROMPT_TOO_LONG.format(prompt=prompt, limit=limit)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _texts(error: dict[str, Any]) -> list[str]:
    """The error's message, and the provider's raw answer OpenRouter forwards in `metadata.raw`."""
    texts = [value for value in (error.get("message"), error.get("detail")) if isinstance(value, str)]
    metadata = error.get("metadata")
    raw = metadata.get("raw") if isinstance(metadata, dict) else None
    if isinstance(raw, str):
        texts.append(raw)
    return texts


def _json_object(text: str) -> dict[str, Any] | None:
    """`text` parsed when it is a JSON object (some servers put the JSON error inside a string)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
