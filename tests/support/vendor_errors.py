"""Real context-overflow answers of OpenAI-compatible servers, and what ccproxy must answer instead.

Wordings are taken from the servers' sources and from error reports quoted in public issues: OpenAI (code
`context_length_exceeded`), vLLM (`serving_engine.py` up to 0.10, the `'max_tokens' ... is too large` check after it,
the `you requested N output tokens` wording of 0.12+, all as `BadRequestError`), llama.cpp server
(`exceed_context_size_error` with `n_prompt_tokens` / `n_ctx`; the message changed in 2025), Ollama (`prompt too long;
exceeded max context length by N tokens`, and `the input length exceeds the context length`), OpenRouter (`This
endpoint's maximum context length is ...`, also wrapping a provider's answer in `metadata.raw`) and DeepSeek (vLLM's
wording). The fake upstream serves these (marker `CONTEXT_OVERFLOW_<NAME>`), and the unit tests read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VendorError:
    """One upstream error answer: HTTP status, JSON body, and ccproxy's expected Anthropic message."""

    status: int
    body: dict[str, Any]
    expected: str


def _openai_style(message: str, error_type: str = "invalid_request_error", **extra: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": None, **extra}}


def _output_too_large(prompt: int, completion: int, limit: int) -> str:
    return (
        f"input length and `max_tokens` exceed context limit: {prompt} + {completion} > {limit}, "
        "decrease input length or `max_tokens` and try again"
    )


VLLM_PROMPT_TOKENS = 180000
VLLM_WINDOW = 200000


def vllm_max_tokens_too_large(completion: int) -> dict[str, Any]:
    """vLLM (0.11+) when prompt + requested output exceed the window but the prompt alone fits."""
    message = (
        f"'max_tokens' or 'max_completion_tokens' is too large: {completion}. This model's maximum context length is"
        f" {VLLM_WINDOW} tokens and your request has {VLLM_PROMPT_TOKENS} input tokens ({completion} >"
        f" {VLLM_WINDOW} - {VLLM_PROMPT_TOKENS}). None"
    )
    return _openai_style(message, "BadRequestError", code=400)


OVERFLOW_ERRORS: dict[str, VendorError] = {
    "OPENAI": VendorError(
        400,
        _openai_style(
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens."
            " Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        ),
        "prompt is too long: 130000 tokens > 128000 maximum",
    ),
    "OPENAI_LEGACY": VendorError(
        400,
        _openai_style(
            "This model's maximum context length is 4097 tokens, however you requested 4231 tokens (3975 in your"
            " prompt; 256 for the completion). Please reduce your prompt; or completion length."
        ),
        _output_too_large(3975, 256, 4097),
    ),
    "OPENAI_WINDOW": VendorError(
        400,
        _openai_style(
            "Your input exceeds the context window of this model. Please adjust your input and try again.",
            code="context_length_exceeded",
        ),
        "prompt is too long for the model's context window (Your input exceeds the context window of this model."
        " Please adjust your input and try again.)",
    ),
    # vLLM <= 0.10 answered with a top-level error object.
    "VLLM": VendorError(
        400,
        {
            "object": "error",
            "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (8500"
            " in the messages, 500 in the completion). Please reduce the length of the messages or completion.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
        "prompt is too long: 8500 tokens > 8192 maximum",
    ),
    "VLLM_OUTPUT": VendorError(
        400,
        {
            "object": "error",
            "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (8000"
            " in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
        _output_too_large(8000, 1000, 8192),
    ),
    "VLLM_INPUT": VendorError(
        400,
        _openai_style(
            "This model's maximum context length is 8192 tokens. However, your request has 9000 input tokens. Please"
            " reduce the length of the input messages.",
            "BadRequestError",
            code=400,
        ),
        "prompt is too long: 9000 tokens > 8192 maximum",
    ),
    "VLLM_MESSAGES": VendorError(
        400,
        {
            "object": "error",
            "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens in the"
            " messages, Please reduce the length of the messages.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
        "prompt is too long: 9000 tokens > 8192 maximum",
    ),
    "VLLM_MAX_TOKENS": VendorError(
        400, vllm_max_tokens_too_large(32000), _output_too_large(VLLM_PROMPT_TOKENS, 32000, VLLM_WINDOW)
    ),
    "VLLM_AT_LEAST": VendorError(
        400,
        _openai_style(
            "This model's maximum context length is 32768 tokens. However, you requested 0 output tokens and your"
            " prompt contains at least 32769 input tokens, for a total of at least 32769 tokens. Please reduce the"
            " length of the input prompt or the number of requested output tokens. (parameter=input_tokens,"
            " value=32769)",
            "BadRequestError",
            param="input_tokens",
            code=400,
        ),
        "prompt is too long: 32769 tokens > 32768 maximum",
    ),
    "LLAMACPP": VendorError(
        400,
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 9000,
                "n_ctx": 8192,
            }
        },
        "prompt is too long: 9000 tokens > 8192 maximum",
    ),
    "LLAMACPP_NEW": VendorError(
        400,
        {
            "error": {
                "code": 400,
                "message": "request (4476 tokens) exceeds the available context size (4096 tokens), try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 4476,
                "n_ctx": 4096,
            }
        },
        "prompt is too long: 4476 tokens > 4096 maximum",
    ),
    # Ollama 0.40 behind its runner: the llama-server error as a JSON string.
    "LLAMACPP_AS_STRING": VendorError(
        400,
        {
            "error": json.dumps(
                {
                    "code": 400,
                    "message": "request (2622 tokens) exceeds the available context size (512 tokens), try increasing"
                    " it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 2622,
                    "n_ctx": 512,
                }
            )
        },
        "prompt is too long: 2622 tokens > 512 maximum",
    ),
    "OLLAMA": VendorError(
        400,
        _openai_style("prompt too long; exceeded max context length by 4021 tokens"),
        "prompt is too long for the model's context window (prompt too long; exceeded max context length by 4021"
        " tokens)",
    ),
    "OLLAMA_NATIVE": VendorError(
        400,
        {"error": "the input length exceeds the context length"},
        "prompt is too long for the model's context window (the input length exceeds the context length)",
    ),
    "OPENROUTER": VendorError(
        400,
        {
            "error": {
                "message": "This endpoint's maximum context length is 163840 tokens. However, you requested about"
                ' 180806 tokens (180806 of text input). Please reduce the length of either one, or use the "middle-out"'
                " transform to compress your prompt automatically.",
                "code": 400,
                "metadata": {"provider_name": None},
            }
        },
        "prompt is too long: 180806 tokens > 163840 maximum",
    ),
    "OPENROUTER_OUTPUT": VendorError(
        400,
        {
            "error": {
                "message": "This endpoint's maximum context length is 163840 tokens. However, you requested about"
                " 180806 tokens (140000 of text input, 8806 of image input, 32000 in the output). Please reduce the"
                ' length of either one, or use the "middle-out" transform to compress your prompt automatically.',
                "code": 400,
                "metadata": {"provider_name": None},
            }
        },
        _output_too_large(148806, 32000, 163840),
    ),
    "OPENROUTER_PROVIDER": VendorError(
        400,
        {
            "error": {
                "message": "Provider returned error",
                "code": 400,
                "metadata": {
                    "provider_name": "Chutes",
                    "raw": json.dumps(
                        {
                            "error": {
                                "message": "This model's maximum context length is 65536 tokens. However, your"
                                " request has 70000 input tokens. Please reduce the length of the input messages."
                            }
                        }
                    ),
                },
            }
        },
        "prompt is too long: 70000 tokens > 65536 maximum",
    ),
    "DEEPSEEK": VendorError(
        400,
        _openai_style(
            "This model's maximum context length is 131072 tokens. However, you requested 140000 tokens (135000 in the"
            " messages, 5000 in the completion). Please reduce the length of the messages or completion.",
            code="invalid_request_error",
        ),
        "prompt is too long: 135000 tokens > 131072 maximum",
    ),
    "MISTRAL": VendorError(
        400,
        {
            "object": "error",
            "message": "Prompt contains 240000 tokens and 0 draft tokens, too large for model with 131072 maximum"
            " context length",
            "type": "invalid_request_message_order",
            "param": None,
            "code": "3051",
        },
        "prompt is too long: 240000 tokens > 131072 maximum",
    ),
    "TOGETHER": VendorError(
        400,
        _openai_style(
            "The input (516368 tokens) is longer than the model's context length (262144 tokens).",
            code="context_length_exceeded",
        ),
        "prompt is too long: 516368 tokens > 262144 maximum",
    ),
    # Anything else that names the window without the numbers we can use (here: vLLM's embedding wording).
    "GENERIC": VendorError(
        400,
        _openai_style(
            "This model's maximum context length is 512 tokens. However, you requested 548 tokens in the input for"
            " embedding generation. Please reduce the length of the input.",
            "BadRequestError",
        ),
        "prompt is too long for the model's context window (This model's maximum context length is 512 tokens."
        " However, you requested 548 tokens in the input for embedding generation. Please reduce the length of the"
        " input.)",
    ),
    "ANTHROPIC": VendorError(
        400,
        {"error": {"message": "prompt is too long: 210000 tokens > 200000 maximum", "code": 400}},
        "prompt is too long: 210000 tokens > 200000 maximum",
    ),
    "ANTHROPIC_MAX_TOKENS": VendorError(
        400,
        {"error": {"message": _output_too_large(190000, 32000, 200000), "code": 400}},
        _output_too_large(190000, 32000, 200000),
    ),
}

# Errors that mention tokens or length but are not a context overflow; they must pass through as they are.
NOT_OVERFLOW: tuple[dict[str, Any], ...] = (
    _openai_style("Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 29000.", "tokens"),
    _openai_style("max_tokens is too large: 200000. This model supports at most 16384 completion tokens.", code=None),
    _openai_style("Invalid 'messages[1].content': string too long. Expected a string with maximum length 10485760."),
    {"error": {"message": "provider died", "code": 502}},
    {"error": "model 'llama3' not found"},
)
