"""Wire shapes as TypedDicts: `ccproxy.types.anthropic` (client side) and `ccproxy.types.openai` (upstream).

The two modules reuse names (`Usage`, `ToolChoice`, `ErrorResponse`, ...), so import the module, or the
unambiguous aliases below: `from ccproxy.types import AnthropicRequest, OpenAIRequest`.
"""

from __future__ import annotations

from ccproxy.types import anthropic, openai

AnthropicRequest = anthropic.MessageCreateParams
AnthropicCountTokensRequest = anthropic.CountTokensParams
AnthropicMessage = anthropic.Message
AnthropicStreamEvent = anthropic.StreamEvent
AnthropicError = anthropic.ErrorResponse
OpenAIRequest = openai.ChatCompletionRequest
OpenAIMessage = openai.ChatMessage
OpenAIResponse = openai.ChatCompletion
OpenAIChunk = openai.ChatCompletionChunk
OpenAIError = openai.ErrorResponse

__all__ = [
    "AnthropicCountTokensRequest",
    "AnthropicError",
    "AnthropicMessage",
    "AnthropicRequest",
    "AnthropicStreamEvent",
    "OpenAIChunk",
    "OpenAIError",
    "OpenAIMessage",
    "OpenAIRequest",
    "OpenAIResponse",
    "anthropic",
    "openai",
]
