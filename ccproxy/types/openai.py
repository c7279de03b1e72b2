"""OpenAI Chat Completions wire shapes (wire.md 4.7-4.9) as TypedDicts: request, response, chunk, errors.

Includes the vendor extras ccproxy reads or writes: `reasoning_content` (DeepSeek, GLM, llama.cpp),
`reasoning` / `reasoning_details` (OpenRouter), `cache_write_tokens` and `cost` in usage (OpenRouter).
"""

from typing import Any, Literal, NotRequired, Required, TypedDict

# ------------------------------------------------------------------------------------------ content parts


class TextPart(TypedDict):
    type: Literal["text"]
    text: str


class ImageURL(TypedDict):
    url: str  # http(s) URL or data URI
    detail: NotRequired[Literal["auto", "low", "high"]]


class ImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: ImageURL


class FileData(TypedDict, total=False):
    filename: str
    file_data: str  # data:application/pdf;base64,…
    file_id: str


class FilePart(TypedDict):
    type: Literal["file"]
    file: FileData


class InputAudio(TypedDict):
    data: str
    format: Literal["wav", "mp3"]


class AudioPart(TypedDict):
    type: Literal["input_audio"]
    input_audio: InputAudio


UserContentPart = TextPart | ImagePart | FilePart | AudioPart


# ------------------------------------------------------------------------------------------ reasoning


class ReasoningText(TypedDict):
    type: Literal["reasoning.text"]
    text: str
    signature: NotRequired[str | None]
    format: NotRequired[str]  # "anthropic-claude-v1", "openai-responses-v1", ...
    index: NotRequired[int]


class ReasoningSummary(TypedDict):
    type: Literal["reasoning.summary"]
    summary: str
    format: NotRequired[str]
    index: NotRequired[int]


class ReasoningEncrypted(TypedDict):
    type: Literal["reasoning.encrypted"]
    data: str
    format: NotRequired[str]
    index: NotRequired[int]


ReasoningDetail = ReasoningText | ReasoningSummary | ReasoningEncrypted


# ------------------------------------------------------------------------------------------ messages


class FunctionCall(TypedDict):
    name: str
    arguments: str  # JSON text


class ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class SystemMessage(TypedDict):
    role: Literal["system"]
    content: str | list[TextPart]


class DeveloperMessage(TypedDict):
    """The system prompt for o-series / gpt-5 models."""

    role: Literal["developer"]
    content: str | list[TextPart]


class UserMessage(TypedDict):
    role: Literal["user"]
    content: str | list[UserContentPart]


class AssistantMessage(TypedDict):
    role: Literal["assistant"]
    content: str | list[TextPart] | None  # None when only tool calls
    tool_calls: NotRequired[list[ToolCall]]
    refusal: NotRequired[str | None]
    reasoning_content: NotRequired[str]  # DeepSeek: required back after tool calls in thinking mode
    reasoning: NotRequired[str]  # OpenRouter
    reasoning_details: NotRequired[list[ReasoningDetail]]  # OpenRouter


class ToolMessage(TypedDict):
    role: Literal["tool"]
    tool_call_id: str
    content: str | list[TextPart]  # text only: images go to a following user message


ChatMessage = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


# ------------------------------------------------------------------------------------------ request


class FunctionDefinition(TypedDict):
    name: str  # <= 64 characters, [a-zA-Z0-9_-]
    description: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]  # JSON Schema with "type": "object"
    strict: NotRequired[bool | None]


class FunctionTool(TypedDict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(TypedDict):
    name: str


class NamedToolChoice(TypedDict):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class StreamOptions(TypedDict, total=False):
    include_usage: bool
    include_obfuscation: bool


class ChatCompletionRequest(TypedDict, total=False):
    """The body POSTed to `/chat/completions`."""

    model: Required[str]
    messages: Required[list[ChatMessage]]
    max_tokens: int  # deprecated, rejected by o-series / gpt-5
    max_completion_tokens: int  # includes reasoning tokens
    temperature: float  # 0..2
    top_p: float
    top_k: int  # vLLM / llama.cpp only
    stop: str | list[str]  # <= 4
    stream: bool
    stream_options: StreamOptions
    tools: list[FunctionTool]
    tool_choice: ToolChoice
    parallel_tool_calls: bool
    user: str
    reasoning_effort: str  # "minimal" | "low" | "medium" | "high" | ...; per model
    reasoning: dict[str, Any]  # OpenRouter: {"effort"} or {"max_tokens"}, "exclude", "enabled"
    response_format: dict[str, Any]
    n: int
    seed: int
    metadata: dict[str, str]
    service_tier: str


# ------------------------------------------------------------------------------------------ usage


class PromptTokensDetails(TypedDict, total=False):
    cached_tokens: int
    audio_tokens: int
    cache_write_tokens: int  # OpenRouter


class CompletionTokensDetails(TypedDict, total=False):
    reasoning_tokens: int
    audio_tokens: int
    accepted_prediction_tokens: int
    rejected_prediction_tokens: int


class Usage(TypedDict):
    """`prompt_tokens` includes cached tokens; `completion_tokens` includes reasoning tokens."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: NotRequired[PromptTokensDetails | None]
    completion_tokens_details: NotRequired[CompletionTokensDetails | None]
    cost: NotRequired[float]  # OpenRouter


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


# ------------------------------------------------------------------------------------------ response


class ResponseMessage(TypedDict):
    role: Literal["assistant"]
    content: str | None
    refusal: NotRequired[str | None]
    tool_calls: NotRequired[list[ToolCall] | None]
    annotations: NotRequired[list[dict[str, Any]]]  # url_citation
    reasoning_content: NotRequired[str | None]
    reasoning: NotRequired[str | None]
    reasoning_details: NotRequired[list[ReasoningDetail]]


class Choice(TypedDict):
    index: int
    message: ResponseMessage
    finish_reason: FinishReason | str | None  # OpenRouter adds "error"
    logprobs: NotRequired[Any]


class ChatCompletion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: NotRequired[Usage | None]
    system_fingerprint: NotRequired[str | None]
    service_tier: NotRequired[str | None]
    provider: NotRequired[str]  # OpenRouter


# ------------------------------------------------------------------------------------------ stream chunk


class DeltaFunction(TypedDict, total=False):
    name: str  # first fragment only
    arguments: str  # a fragment of the JSON text


class DeltaToolCall(TypedDict):
    """One fragment of a tool call; `index` ties the fragments of one call together, `id` comes once."""

    index: int
    id: NotRequired[str | None]
    type: NotRequired[Literal["function"]]
    function: NotRequired[DeltaFunction]


class ChoiceDelta(TypedDict, total=False):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    tool_calls: list[DeltaToolCall]
    reasoning_content: str | None
    reasoning: str | None
    reasoning_details: list[ReasoningDetail]


class ChunkChoice(TypedDict):
    index: int
    delta: ChoiceDelta
    finish_reason: FinishReason | str | None
    logprobs: NotRequired[Any]
    native_finish_reason: NotRequired[str | None]  # OpenRouter
    error: NotRequired[dict[str, Any]]  # OpenRouter mid-stream error


class ChatCompletionChunk(TypedDict):
    """One `data:` line of a stream; the final usage chunk has `choices: []`. `data: [DONE]` ends it."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: NotRequired[Usage | None]
    system_fingerprint: NotRequired[str | None]
    service_tier: NotRequired[str | None]
    obfuscation: NotRequired[str]
    provider: NotRequired[str]  # OpenRouter


# ------------------------------------------------------------------------------------------ errors


class ErrorObject(TypedDict, total=False):
    message: Required[str]
    type: str | None
    param: str | None
    code: str | int | None  # OpenRouter uses the HTTP status as an int
    metadata: dict[str, Any]  # OpenRouter: provider_name, raw, reasons, ...


class ErrorResponse(TypedDict):
    error: ErrorObject
