"""Anthropic Messages API wire shapes (wire.md 4.1-4.5) as TypedDicts: requests, responses, events, errors.

These document the JSON ccproxy reads and writes; nothing validates against them at run time. Like the SDK, a
reader must tolerate keys and `type` values not listed here: Anthropic adds them often.
"""

from typing import Any, Literal, NotRequired, Required, TypedDict

# ------------------------------------------------------------------------------------------ shared


class CacheControl(TypedDict, total=False):
    type: Required[Literal["ephemeral"]]
    ttl: str  # "5m" | "1h"
    scope: str  # newer Claude Code versions, on system blocks


class Citation(TypedDict, total=False):
    type: Required[str]  # char_location, page_location, content_block_location, web_search_result_location, ...
    cited_text: str


# ------------------------------------------------------------------------------------------ content blocks


class TextBlockParam(TypedDict):
    type: Literal["text"]
    text: str
    cache_control: NotRequired[CacheControl | None]
    citations: NotRequired[list[Citation] | None]


class Base64ImageSource(TypedDict):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class URLImageSource(TypedDict):
    type: Literal["url"]
    url: str


class FileSource(TypedDict):
    """A Files API reference; ccproxy cannot resolve these and answers 400."""

    type: Literal["file"]
    file_id: str


ImageSource = Base64ImageSource | URLImageSource | FileSource


class ImageBlockParam(TypedDict):
    type: Literal["image"]
    source: ImageSource
    cache_control: NotRequired[CacheControl | None]


class Base64PDFSource(TypedDict):
    type: Literal["base64"]
    media_type: Literal["application/pdf"]
    data: str


class PlainTextSource(TypedDict):
    type: Literal["text"]
    media_type: Literal["text/plain"]
    data: str


class ContentBlockSource(TypedDict):
    type: Literal["content"]
    content: str | list[TextBlockParam | ImageBlockParam]


class URLPDFSource(TypedDict):
    type: Literal["url"]
    url: str


DocumentSource = Base64PDFSource | PlainTextSource | ContentBlockSource | URLPDFSource | FileSource


class DocumentBlockParam(TypedDict):
    type: Literal["document"]
    source: DocumentSource
    title: NotRequired[str | None]
    context: NotRequired[str | None]
    citations: NotRequired[dict[str, Any] | None]  # {"enabled": bool}
    cache_control: NotRequired[CacheControl | None]


class SearchResultBlockParam(TypedDict):
    type: Literal["search_result"]
    source: str
    title: str
    content: list[TextBlockParam]
    citations: NotRequired[dict[str, Any]]
    cache_control: NotRequired[CacheControl | None]


class ToolUseBlockParam(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: NotRequired[CacheControl | None]


ToolResultContent = TextBlockParam | ImageBlockParam | DocumentBlockParam | SearchResultBlockParam


class ToolResultBlockParam(TypedDict):
    type: Literal["tool_result"]
    tool_use_id: str
    content: NotRequired[str | list[ToolResultContent]]
    is_error: NotRequired[bool]
    cache_control: NotRequired[CacheControl | None]


class ThinkingBlockParam(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlockParam(TypedDict):
    type: Literal["redacted_thinking"]
    data: str


class ServerToolUseBlockParam(TypedDict):
    type: Literal["server_tool_use"]
    id: str  # "srvtoolu_…"
    name: str
    input: dict[str, Any]
    cache_control: NotRequired[CacheControl | None]


class WebSearchResultBlock(TypedDict):
    type: Literal["web_search_result"]
    title: str
    url: str
    encrypted_content: str
    page_age: NotRequired[str | None]


class WebSearchToolResultError(TypedDict):
    type: Literal["web_search_tool_result_error"]
    error_code: str


class WebSearchToolResultBlockParam(TypedDict):
    type: Literal["web_search_tool_result"]
    tool_use_id: str
    content: list[WebSearchResultBlock] | WebSearchToolResultError
    cache_control: NotRequired[CacheControl | None]


ContentBlockParam = (
    TextBlockParam
    | ImageBlockParam
    | DocumentBlockParam
    | SearchResultBlockParam
    | ToolUseBlockParam
    | ToolResultBlockParam
    | ThinkingBlockParam
    | RedactedThinkingBlockParam
    | ServerToolUseBlockParam
    | WebSearchToolResultBlockParam
)


class MessageParam(TypedDict):
    """One entry of `messages`. Claude Code also sends `role: "system"` entries, sometimes with extra keys."""

    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlockParam]


# ------------------------------------------------------------------------------------------ tools


class ToolParam(TypedDict):
    """A custom (client-executed) tool."""

    name: str
    input_schema: dict[str, Any]  # JSON Schema, type "object"
    description: NotRequired[str]
    type: NotRequired[Literal["custom"] | None]
    cache_control: NotRequired[CacheControl | None]
    strict: NotRequired[bool]  # -> `strict` on the function where the upstream takes it


class ClientToolParam(TypedDict, total=False):
    """An Anthropic-defined tool the client executes (`bash_20250124`, `text_editor_20250728`, `memory_20250818`,
    ...): no `input_schema`, the schema is Anthropic's (core/client_tools.py)."""

    type: Required[str]
    name: Required[str]  # fixed per type: "bash", "str_replace_editor", "str_replace_based_edit_tool", "memory"
    max_characters: int | None  # text_editor_20250728: the most a `view` shows
    strict: bool
    cache_control: CacheControl | None


class ServerToolParam(TypedDict, total=False):
    """A server tool (`web_search_20250305`, `web_fetch_*`, `code_execution_*`, ...), named by its `type`."""

    type: Required[str]
    name: Required[str]
    max_uses: int
    cache_control: CacheControl | None


class ToolChoiceAuto(TypedDict):
    type: Literal["auto"]
    disable_parallel_tool_use: NotRequired[bool]


class ToolChoiceAny(TypedDict):
    type: Literal["any"]
    disable_parallel_tool_use: NotRequired[bool]


class ToolChoiceTool(TypedDict):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: NotRequired[bool]


class ToolChoiceNone(TypedDict):
    type: Literal["none"]


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class ThinkingConfigEnabled(TypedDict):
    type: Literal["enabled"]
    budget_tokens: int  # >= 1024
    display: NotRequired[Literal["summarized", "omitted"]]


class ThinkingConfigAdaptive(TypedDict):
    type: Literal["adaptive"]
    display: NotRequired[Literal["summarized", "omitted"]]


class ThinkingConfigDisabled(TypedDict):
    type: Literal["disabled"]


ThinkingConfig = ThinkingConfigEnabled | ThinkingConfigAdaptive | ThinkingConfigDisabled


class Metadata(TypedDict, total=False):
    user_id: str | None  # Claude Code: a JSON string {"device_id", "account_uuid", "session_id"}


class OutputConfig(TypedDict, total=False):
    effort: str  # "low" | "medium" | "high" | "max"
    format: dict[str, Any]  # {"type": "json_schema", "schema": {...}}


# ------------------------------------------------------------------------------------------ requests


class MessageCreateParams(TypedDict, total=False):
    """The body of `POST /v1/messages`."""

    model: Required[str]
    max_tokens: Required[int]
    messages: Required[list[MessageParam]]
    system: str | list[TextBlockParam]
    stream: bool
    temperature: float  # 0..1
    top_p: float
    top_k: int
    stop_sequences: list[str]
    metadata: Metadata
    tools: list[ToolParam | ClientToolParam | ServerToolParam]
    tool_choice: ToolChoice
    thinking: ThinkingConfig
    service_tier: Literal["auto", "standard_only"]
    output_config: OutputConfig
    output_format: dict[str, Any]  # beta structured-outputs-2025-11-13: read like output_config.format
    # Anthropic-only, never forwarded upstream:
    cache_control: CacheControl
    context_management: dict[str, Any]
    container: Any
    inference_geo: str
    mcp_servers: list[dict[str, Any]]
    speed: str


class CountTokensParams(TypedDict, total=False):
    """The body of `POST /v1/messages/count_tokens`: no `max_tokens`."""

    model: Required[str]
    messages: Required[list[MessageParam]]
    system: str | list[TextBlockParam]
    tools: list[ToolParam | ClientToolParam | ServerToolParam]
    tool_choice: ToolChoice
    thinking: ThinkingConfig
    output_config: OutputConfig
    cache_control: CacheControl
    context_management: dict[str, Any]
    mcp_servers: list[dict[str, Any]]
    output_format: dict[str, Any]  # beta structured-outputs-2025-11-13: read like output_config.format
    speed: str


class CountTokensResponse(TypedDict):
    input_tokens: int


# ------------------------------------------------------------------------------------------ responses


class TextBlock(TypedDict):
    type: Literal["text"]
    text: str
    citations: NotRequired[list[Citation] | None]


class ThinkingBlock(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(TypedDict):
    type: Literal["redacted_thinking"]
    data: str


class ToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: str  # "toolu_…"
    name: str
    input: dict[str, Any]


class ServerToolUseBlock(TypedDict):
    type: Literal["server_tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class WebSearchToolResultBlock(TypedDict):
    type: Literal["web_search_tool_result"]
    tool_use_id: str
    content: list[WebSearchResultBlock] | WebSearchToolResultError


ContentBlock = (
    TextBlock | ThinkingBlock | RedactedThinkingBlock | ToolUseBlock | ServerToolUseBlock | WebSearchToolResultBlock
)

StopReason = Literal[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
]


class ServerToolUsage(TypedDict):
    web_search_requests: int


class Usage(TypedDict):
    """Total input = input_tokens + cache_creation_input_tokens + cache_read_input_tokens."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: NotRequired[int | None]
    cache_read_input_tokens: NotRequired[int | None]
    cache_creation: NotRequired[dict[str, int] | None]
    server_tool_use: NotRequired[ServerToolUsage | None]
    service_tier: NotRequired[str | None]


class Message(TypedDict):
    """A non-streaming response; also the `message` of `message_start` (empty content, null stop_reason)."""

    id: str  # "msg_…"
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ContentBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage


# ------------------------------------------------------------------------------------------ stream events


class MessageStartEvent(TypedDict):
    type: Literal["message_start"]
    message: Message


class ContentBlockStartEvent(TypedDict):
    type: Literal["content_block_start"]
    index: int
    content_block: ContentBlock  # text "" / thinking "" / tool_use with input {} / a complete search result


class TextDelta(TypedDict):
    type: Literal["text_delta"]
    text: str


class InputJSONDelta(TypedDict):
    type: Literal["input_json_delta"]
    partial_json: str


class ThinkingDelta(TypedDict):
    type: Literal["thinking_delta"]
    thinking: str


class SignatureDelta(TypedDict):
    type: Literal["signature_delta"]
    signature: str


class CitationsDelta(TypedDict):
    type: Literal["citations_delta"]
    citation: Citation


Delta = TextDelta | InputJSONDelta | ThinkingDelta | SignatureDelta | CitationsDelta


class ContentBlockDeltaEvent(TypedDict):
    type: Literal["content_block_delta"]
    index: int
    delta: Delta


class ContentBlockStopEvent(TypedDict):
    type: Literal["content_block_stop"]
    index: int


class MessageDelta(TypedDict):
    stop_reason: StopReason | None
    stop_sequence: str | None


class MessageDeltaUsage(TypedDict):
    """Cumulative counts."""

    output_tokens: int
    input_tokens: NotRequired[int | None]
    cache_creation_input_tokens: NotRequired[int | None]
    cache_read_input_tokens: NotRequired[int | None]
    server_tool_use: NotRequired[ServerToolUsage | None]


class MessageDeltaEvent(TypedDict):
    type: Literal["message_delta"]
    delta: MessageDelta
    usage: MessageDeltaUsage


class MessageStopEvent(TypedDict):
    type: Literal["message_stop"]


class PingEvent(TypedDict):
    type: Literal["ping"]


ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "timeout_error",
    "api_error",
    "overloaded_error",
]


class ErrorObject(TypedDict):
    type: ErrorType
    message: str


class ErrorResponse(TypedDict):
    """An error body, and also the `error` stream event (same shape)."""

    type: Literal["error"]
    error: ErrorObject
    request_id: NotRequired[str]


StreamEvent = (
    MessageStartEvent
    | ContentBlockStartEvent
    | ContentBlockDeltaEvent
    | ContentBlockStopEvent
    | MessageDeltaEvent
    | MessageStopEvent
    | PingEvent
    | ErrorResponse
)
