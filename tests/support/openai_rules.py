"""The request checks api.openai.com applies to POST /v1/chat/completions, with OpenAI's error wording."""

from __future__ import annotations

import re
from typing import Any

# Top-level request fields documented for Chat Completions; anything else is rejected like OpenAI does.
KNOWN_FIELDS = frozenset(
    {
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
        "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
        "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_retention",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store",
        "stream", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
        "verbosity", "web_search_options",
    }
)  # fmt: skip
MESSAGE_FIELDS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
PART_FIELDS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text"}),
    "image_url": frozenset({"type", "image_url"}),
    "input_audio": frozenset({"type", "input_audio"}),
    "file": frozenset({"type", "file"}),
    "refusal": frozenset({"type", "refusal"}),
}
# Tool messages take text parts only: this is what catches images left inside tool results.
PARTS_BY_ROLE: dict[str, frozenset[str]] = {
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "assistant": frozenset({"text", "refusal"}),
    "tool": frozenset({"text"}),
}
TOOL_FIELDS = frozenset({"type", "function"})
FUNCTION_FIELDS = frozenset({"name", "description", "parameters", "strict"})
STREAM_OPTIONS = frozenset({"include_usage", "include_obfuscation"})
REASONING_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
REASONING_MODEL = re.compile(r"^(gpt-5|o\d)")
NO_STOP_MODEL = re.compile(r"^(o3|o4-mini)")
MAX_TOOL_CALL_ID = 40
MAX_USER_LENGTH = 64
MAX_STOP_SEQUENCES = 4
STRICT_CODE = "invalid_function_parameters"


class OpenAIError(Exception):
    """An error answered with OpenAI's `{"error": {message, type, param, code}}` body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}
        return {"error": error}


def invalid(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def unrecognized(param: str) -> OpenAIError:
    return invalid(f"Unrecognized request argument supplied: {param}", param)


def empty_array(param: str) -> OpenAIError:
    return invalid(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array.",
        param,
        "empty_array",
    )


def unsupported(param: str, detail: str, code: str = "unsupported_parameter") -> OpenAIError:
    return invalid(f"Unsupported parameter: '{param}' {detail}", param, code)


def unanswered_tool_calls(pending: set[str], param: str) -> OpenAIError:
    return invalid(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        "'tool_call_id'. The following tool_call_ids did not have response messages: " + ", ".join(sorted(pending)),
        param,
    )


def check_strict_schema(name: str, schema: dict[str, Any], param: str, context: tuple[str, ...] = ()) -> None:
    """OpenAI's strict mode (structured outputs): every object closed and every one of its properties required."""

    def fail(rule: str) -> OpenAIError:
        return invalid(f"Invalid schema for function '{name}': In context={context!r}, {rule}", param, STRICT_CODE)

    properties = schema.get("properties")
    if schema.get("type") == "object" or isinstance(properties, dict):
        if schema.get("additionalProperties") is not False:
            raise fail("'additionalProperties' is required to be supplied and to be false.")
        required = schema.get("required")
        for key in properties or {}:
            if not isinstance(required, list) or key not in required:
                raise fail(
                    "'required' is required to be supplied and to be an array including every key in "
                    f"properties. Missing '{key}'."
                )
    for key, child in (properties or {}).items():
        if isinstance(child, dict):
            check_strict_schema(name, child, param, (*context, "properties", key))
    for keyword in ("items", "not"):
        if isinstance(schema.get(keyword), dict):
            check_strict_schema(name, schema[keyword], param, (*context, keyword))
    for keyword in ("anyOf", "allOf", "oneOf"):
        for index, child in enumerate(schema.get(keyword) or ()):
            if isinstance(child, dict):
                check_strict_schema(name, child, param, (*context, keyword, str(index)))
    for keyword in ("$defs", "definitions"):
        for key, child in (schema.get(keyword) or {}).items():
            if isinstance(child, dict):
                check_strict_schema(name, child, param, (*context, keyword, key))


def is_reasoning_model(model: str) -> bool:
    """gpt-5 and o-series: `max_completion_tokens` only, default temperature only, `reasoning_effort` ok."""
    return REASONING_MODEL.match(model) is not None


class RequestValidator:
    """Checks a Chat Completions body; raises OpenAIError at the first problem (404 for a Claude model)."""

    def validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise invalid("We could not parse the JSON body of your request.")
        for name in body:
            if name not in KNOWN_FIELDS:
                raise unrecognized(name)
        self._model(body)
        self._messages(body.get("messages"))
        self._tools(body)
        self._limits(body)
        self._streaming(body)

    def _model(self, body: dict[str, Any]) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise invalid("you must provide a model parameter", "model")
        if "claude" in model.lower():
            # An Anthropic model name reaching OpenAI means the proxy did not map it; OpenAI answers 404.
            message = f"The model `{model}` does not exist or you do not have access to it."
            raise OpenAIError(404, message, code="model_not_found")
        if not is_reasoning_model(model):
            if "reasoning_effort" in body:
                raise unsupported("reasoning_effort", "is not supported with this model.")
            return
        if "max_tokens" in body:
            raise unsupported("max_tokens", "is not supported with this model. Use 'max_completion_tokens' instead.")
        if body.get("temperature", 1) != 1:
            detail = f"does not support {body['temperature']} with this model. Only the default (1) is supported."
            raise unsupported("temperature", detail, "unsupported_value")
        if "stop" in body and NO_STOP_MODEL.match(model):
            raise unsupported("stop", "is not supported with this model.")

    def _messages(self, messages: Any) -> None:
        if not isinstance(messages, list):
            raise invalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
        if not messages:
            raise empty_array("messages")
        for index, message in enumerate(messages):
            self._message(message, f"messages[{index}]")
        self._tool_call_pairing(messages)

    def _message(self, message: Any, where: str) -> None:
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(message, dict) or role not in MESSAGE_FIELDS:
            supported = "'system', 'assistant', 'user', 'tool', 'function' and 'developer'"
            raise invalid(f"Invalid value: '{role}'. Supported values are: {supported}.", f"{where}.role")
        for name in message:
            if name not in MESSAGE_FIELDS[role]:
                raise unrecognized(f"{where}.{name}")
        self._content(message, role, where)
        if "tool_calls" in message:
            self._tool_calls(message["tool_calls"], f"{where}.tool_calls")
        if role == "tool" and not (isinstance(message.get("tool_call_id"), str) and message["tool_call_id"]):
            raise invalid(f"Missing required parameter: '{where}.tool_call_id'.", f"{where}.tool_call_id")

    def _content(self, message: dict[str, Any], role: str, where: str) -> None:
        content = message.get("content")
        param = f"{where}.content"
        if content is None and role == "assistant" and (message.get("tool_calls") or message.get("refusal")):
            return
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            raise invalid(f"Invalid type for '{param}': expected a string or an array, got {content!r}.", param)
        if not content:
            raise empty_array(param)
        for index, part in enumerate(content):
            self._part(part, role, f"{param}[{index}]")

    def _part(self, part: Any, role: str, where: str) -> None:
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict) or kind not in PARTS_BY_ROLE[role]:
            allowed = ", ".join(f"'{name}'" for name in sorted(PARTS_BY_ROLE[role]))
            raise invalid(f"Invalid value: '{kind}'. Supported values are: {allowed}.", f"{where}.type")
        for name in part:
            if name not in PART_FIELDS[kind]:
                raise unrecognized(f"{where}.{name}")
        if kind == "text" and not isinstance(part.get("text"), str):
            raise invalid(f"Invalid type for '{where}.text': expected a string.", f"{where}.text", "invalid_type")
        if kind == "image_url":
            image = part["image_url"]
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:image/")):
                raise invalid(f"Invalid 'image_url' in '{where}'.", f"{where}.image_url", "invalid_value")

    def _tool_calls(self, calls: Any, where: str) -> None:
        if not isinstance(calls, list) or not calls:
            raise empty_array(where)
        for index, call in enumerate(calls):
            here = f"{where}[{index}]"
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(call, dict) or call.get("type") != "function" or not isinstance(function, dict):
                raise invalid(f"Invalid '{here}': expected a function tool call.", here, "invalid_value")
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                raise invalid(f"Missing required parameter: '{here}.id'.", f"{here}.id")
            if len(call_id) > MAX_TOOL_CALL_ID:
                raise invalid(
                    f"Invalid '{here}.id': string too long. Expected a string with maximum length "
                    f"{MAX_TOOL_CALL_ID}, but got a string with length {len(call_id)} instead.",
                    f"{here}.id",
                    "string_above_max_length",
                )
            if not isinstance(function.get("name"), str) or not isinstance(function.get("arguments"), str):
                raise invalid(f"Invalid '{here}.function': name and arguments must be strings.", f"{here}.function")

    def _tool_call_pairing(self, messages: list[dict[str, Any]]) -> None:
        """Tool calls need tool messages before the next other message; tool messages need a call."""
        pending: set[str] = set()
        for index, message in enumerate(messages):
            if message["role"] == "tool":
                if message["tool_call_id"] not in pending:
                    raise invalid(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                        "message with 'tool_calls'.",
                        f"messages.[{index}].role",
                    )
                pending.discard(message["tool_call_id"])
                continue
            if pending:
                raise unanswered_tool_calls(pending, f"messages.[{index}].role")
            if message["role"] == "assistant":
                pending = {call["id"] for call in message.get("tool_calls") or []}
        if pending:
            raise unanswered_tool_calls(pending, "messages")

    def _tools(self, body: dict[str, Any]) -> None:
        tools = body.get("tools")
        if "tools" in body:
            if not isinstance(tools, list) or not tools:
                raise empty_array("tools")
            for index, tool in enumerate(tools):
                self._tool(tool, f"tools[{index}]")
        for name in ("tool_choice", "parallel_tool_calls"):
            if name in body and not tools:
                message = f"Invalid value for '{name}': '{name}' is only allowed when 'tools' are specified."
                raise invalid(message, name)
        choice = body.get("tool_choice")
        if choice is None or choice in ("none", "auto", "required"):
            return
        function = choice.get("function") if isinstance(choice, dict) else None
        if not isinstance(function, dict) or choice.get("type") != "function" or "name" not in function:
            raise invalid(f"Invalid value for 'tool_choice': {choice!r}.", "tool_choice", "invalid_value")

    def _tool(self, tool: Any, where: str) -> None:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise invalid(f"Invalid '{where}': expected a function tool.", where, "invalid_value")
        extra = sorted(f"{where}.{n}" for n in set(tool) - TOOL_FIELDS)
        extra += sorted(f"{where}.function.{n}" for n in set(function) - FUNCTION_FIELDS)
        if extra:
            raise unrecognized(extra[0])
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise invalid(
                f"Invalid '{where}.function.name': string does not match pattern. Expected a string that "
                "matches the pattern '^[a-zA-Z0-9_-]+$' with maximum length 64.",
                f"{where}.function.name",
                "invalid_value",
            )
        parameters = function.get("parameters")
        if parameters is not None and not (isinstance(parameters, dict) and parameters.get("type") == "object"):
            message = f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"'."
            raise invalid(message, f"{where}.function.parameters", "invalid_function_parameters")
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            message = f"Invalid type for '{where}.function.strict': expected a boolean, but got {strict!r} instead."
            raise invalid(message, f"{where}.function.strict", "invalid_type")
        if strict and isinstance(parameters, dict):
            check_strict_schema(name, parameters, f"{where}.function.parameters")

    def _limits(self, body: dict[str, Any]) -> None:
        for name in ("max_tokens", "max_completion_tokens"):
            value = body.get(name)
            if name in body and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise invalid(f"Invalid '{name}': expected an integer >= 1, got {value!r}.", name)
        stop = body.get("stop")
        if isinstance(stop, list) and len(stop) > MAX_STOP_SEQUENCES:
            raise invalid("Invalid 'stop': array too long. Expected an array with maximum length 4.", "stop")
        effort = body.get("reasoning_effort")
        if "reasoning_effort" in body and effort not in REASONING_EFFORTS:
            raise invalid(f"Invalid value: '{effort}'.", "reasoning_effort", "invalid_value")
        user = body.get("user")
        if "user" in body and (not isinstance(user, str) or len(user) > MAX_USER_LENGTH):
            message = f"Invalid 'user': string too long. Expected a string with maximum length {MAX_USER_LENGTH}."
            raise invalid(message, "user", "string_above_max_length")
        temperature = body.get("temperature", 1)
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
            raise invalid(f"Invalid 'temperature': {temperature!r}.", "temperature", "invalid_value")

    def _streaming(self, body: dict[str, Any]) -> None:
        if "stream_options" not in body:
            return
        if body.get("stream") is not True:
            raise invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
        options = body["stream_options"]
        if not isinstance(options, dict) or set(options) - STREAM_OPTIONS:
            raise invalid(f"Invalid 'stream_options': {options!r}.", "stream_options", "invalid_value")
