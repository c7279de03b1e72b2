"""What the core needs to know about one request: the target model's capabilities and the response context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ccproxy.core.toolnames import ToolNameMap


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    """What an upstream model accepts. A provider plugin answers this once per upstream model name."""

    # gpt-5 / o-series take `max_completion_tokens`; everything else `max_tokens`.
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # o-series / gpt-5 want the system prompt as a `developer` message.
    system_role: Literal["system", "developer"] = "system"
    # gpt-5 / o-series accept only the default temperature (1) and no top_p.
    supports_temperature: bool = True
    supports_top_p: bool = True
    # o3 / o4-mini reject `stop`.
    supports_stop: bool = True
    # vLLM / llama.cpp take `top_k`; OpenAI rejects it.
    supports_top_k: bool = False
    # PDF documents as `file` content parts.
    supports_documents: bool = False
    # Upper bound for the output-token parameter; None = pass the client's value.
    max_output_tokens: int | None = None
    # How assistant thinking blocks in the history are replayed upstream.
    reasoning_replay: Literal["drop", "reasoning_content", "reasoning_details"] = "drop"
    # Whether the model can reason at all (reasoning parameters are only sent when true).
    supports_reasoning: bool = False
    # How thinking is switched on and off (ccproxy/default_plugins/reasoning.py): `reasoning_effort` from the
    # budget or effort ("effort", OpenAI); `thinking: {"type": "enabled"|"disabled"}` ("thinking", DeepSeek V4,
    # GLM); a top-level `enable_thinking` flag ("enable_thinking", Qwen3 on DashScope);
    # `chat_template_kwargs: {"enable_thinking": ...}` ("chat_template_kwargs", Qwen3 on vLLM / SGLang); nothing
    # ("none": the model always reasons, or never). A style for another shape (OpenRouter's `reasoning` object)
    # comes with the configurator that sends it; the built-in one sends nothing for styles it does not know.
    reasoning_style: Literal["effort", "thinking", "enable_thinking", "chat_template_kwargs", "none"] = "effort"
    # Whether functions take `strict: true` (OpenAI's own API); elsewhere a tool's `strict` is dropped, since some
    # OpenAI-compatible servers refuse fields they do not know.
    supports_strict_tools: bool = False
    # Forward the client's `cache_control` markers on content parts (system, message and tool-result text, images)
    # so a gateway in front of Anthropic models (OpenRouter) keeps prompt caching; never on tools. The system prompt
    # is then sent as a list of text parts, which can carry them.
    forward_cache_control: bool = False
    # The model refuses a request that switches reasoning off ("Reasoning is mandatory for this endpoint"): a
    # configurator must then leave reasoning on (or to the model's default), whatever the client asked.
    reasoning_mandatory: bool = False
    # Local models (Qwen3, DeepSeek-R1 distills) that write their reasoning into the content as `<think>...</think>`:
    # the answer's leading think section becomes a thinking block (ccproxy/thinktags.py).
    think_tags: bool = False
    # The model's context window in tokens (prompt + output), when known: max_tokens is clamped to what is left
    # after the prompt, and a prompt that cannot fit is answered as Anthropic's "prompt is too long" before sending.
    context_window: int | None = None


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """Everything decided before conversion: where the request goes and how it is shaped."""

    upstream_model: str
    capabilities: ModelCapabilities
    stream: bool
    tool_names: ToolNameMap = field(default_factory=ToolNameMap)
    # Extra top-level fields from the reasoning-configuration hook, e.g. {"reasoning_effort": "high"}.
    reasoning: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResponseContext:
    """What response/stream conversion needs from the request side."""

    message_id: str
    model: str
    input_tokens_estimate: int = 0
    tool_names: ToolNameMap = field(default_factory=ToolNameMap)
    # Makes an error message fit for the client; the app passes its redactor (ccproxy/redaction.py), so every
    # stream error event is redacted where it is made.
    public_message: Callable[[str], str] = field(default=str)
