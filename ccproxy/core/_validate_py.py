"""Targeted validation of Anthropic request bodies: what the converter reads, with Anthropic-style errors.

This runs on every request, on bodies of tens of kilobytes, so it is a hand-written walk rather than a model:
it checks only the fields ccproxy reads and raises `InvalidRequestError` naming the field path the way the
Anthropic API does (`messages.3.content.0.type: Field required`). Unknown top-level fields and unknown block
types are accepted (wire.md 4.10 rule 1): Claude Code sends new ones with every release.

Decisions:
- `temperature` and `top_p` must lie in 0..1, Anthropic's range (wire.md 4.1). A client written against
  Anthropic never sends more, and accepting OpenAI's 0..2 would make the proxy accept requests the real API
  refuses.
- `max_tokens` may be 0 (the newest SDKs document it for cache warming); the converter raises it to 1
  upstream.
- `thinking.budget_tokens` must be >= 1024 but is not compared with `max_tokens`: with the
  interleaved-thinking beta (which Claude Code always sends, in a header we do not see here) the budget may
  exceed `max_tokens`.
- Tool names must be non-empty and unique; their character set is left to the upstream.
- The whole body is first checked for nesting deeper than `MAX_DEPTH` (core/nesting.py), so no walk after it, here
  or in conversion and token counting, can meet a structure deep enough to exhaust the stack.
- A structured-output format (`output_config.format`, or the beta top-level `output_format`) must be a
  `json_schema` with an object `schema`: the converter would otherwise drop it, and the client would get free text
  where it asked for JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ccproxy.core._nesting_py import NESTING_MESSAGE, exceeds_depth
from ccproxy.core.client_tools import MAX_CHARACTERS_TYPES
from ccproxy.errors import InvalidRequestError

__all__ = ["validate_count_tokens_request", "validate_messages_request"]

REQUIRED = "Field required"
ROLES = ("user", "assistant", "system")
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MIN_THINKING_BUDGET = 1024
OUTPUT_FORMAT_TYPES = ("json_schema",)

_TYPE_NAMES = {
    str: "a valid string",
    bool: "a valid boolean",
    dict: "a valid dictionary",
    list: "a valid list",
}


def _fail(path: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{path}: {message}")


def _choices(values: tuple[str, ...]) -> str:
    quoted = [f"'{value}'" for value in values]
    if len(quoted) == 1:
        return f"Input should be {quoted[0]}"
    return "Input should be " + ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


def _require(obj: dict[str, Any], key: str, kind: type, path: str) -> Any:
    """`obj[key]`, which must be present and of `kind`."""
    if key not in obj:
        raise _fail(f"{path}{key}", REQUIRED)
    return _expect(obj[key], kind, f"{path}{key}")


def _optional(obj: dict[str, Any], key: str, kind: type, path: str) -> Any:
    """`obj[key]` when present and not null (checked against `kind`), else None."""
    value = obj.get(key)
    return None if value is None else _expect(value, kind, f"{path}{key}")


def _expect(value: Any, kind: type, path: str) -> Any:
    # bool is an int subclass in Python; JSON true is never a valid string/list/dict, so only ints need care.
    if not isinstance(value, kind):
        raise _fail(path, f"Input should be {_TYPE_NAMES[kind]}")
    return value


def _integer(obj: dict[str, Any], key: str, minimum: int, path: str = "") -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"{path}{key}", "Input should be a valid integer")
    if value < minimum:
        raise _fail(f"{path}{key}", f"Input should be greater than or equal to {minimum}")
    return value


def _unit_number(obj: dict[str, Any], key: str) -> None:
    """A number in 0..1 (Anthropic's range for temperature and top_p)."""
    value = obj.get(key)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _fail(key, "Input should be a valid number")
    if value < 0:
        raise _fail(key, "Input should be greater than or equal to 0")
    if value > 1:
        raise _fail(key, "Input should be less than or equal to 1")


# ------------------------------------------------------------------------------------------ content blocks


def _text_block(block: dict[str, Any], path: str) -> None:
    _require(block, "text", str, path)


def _image_block(block: dict[str, Any], path: str) -> None:
    source = _require(block, "source", dict, path)
    kind = _require(source, "type", str, f"{path}source.")
    if kind == "base64":
        media_type = _require(source, "media_type", str, f"{path}source.")
        if media_type not in IMAGE_MEDIA_TYPES:
            raise _fail(f"{path}source.media_type", _choices(IMAGE_MEDIA_TYPES))
        _require(source, "data", str, f"{path}source.")
    elif kind == "url":
        _require(source, "url", str, f"{path}source.")


def _document_block(block: dict[str, Any], path: str) -> None:
    source = _require(block, "source", dict, path)
    kind = _require(source, "type", str, f"{path}source.")
    if kind in ("base64", "text"):
        _require(source, "data", str, f"{path}source.")
    elif kind == "url":
        _require(source, "url", str, f"{path}source.")
    elif kind == "content":
        if "content" not in source:
            raise _fail(f"{path}source.content", REQUIRED)
        _content(source["content"], f"{path}source.content")
    _optional(block, "title", str, path)


def _tool_use_block(block: dict[str, Any], path: str) -> None:
    _require(block, "id", str, path)
    _require(block, "name", str, path)
    _require(block, "input", dict, path)


def _tool_result_block(block: dict[str, Any], path: str) -> None:
    _require(block, "tool_use_id", str, path)
    content = block.get("content")
    if content is not None:
        _content(content, f"{path}content")
    _optional(block, "is_error", bool, path)


def _thinking_block(block: dict[str, Any], path: str) -> None:
    _require(block, "thinking", str, path)
    # Anthropic itself requires the signature; we only need it for OpenRouter replay, so absent is fine.
    _optional(block, "signature", str, path)


def _redacted_thinking_block(block: dict[str, Any], path: str) -> None:
    _require(block, "data", str, path)


# Block types the converter reads, and what it reads from them. Other types are accepted unchecked.
BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "text": _text_block,
    "image": _image_block,
    "document": _document_block,
    "tool_use": _tool_use_block,
    "tool_result": _tool_result_block,
    "thinking": _thinking_block,
    "redacted_thinking": _redacted_thinking_block,
}


def _block(block: Any, path: str) -> None:
    _expect(block, dict, path)
    kind = _require(block, "type", str, f"{path}.")
    check = BLOCK_CHECKS.get(kind)
    if check is not None:
        check(block, f"{path}.")


def _content(content: Any, path: str) -> None:
    """A string, or a list of blocks each with a string `type`."""
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail(path, "Input should be a valid string or a valid list")
    for index, block in enumerate(content):
        _block(block, f"{path}.{index}")


# ------------------------------------------------------------------------------------------ top level


def _messages(body: dict[str, Any], known: int = 0) -> None:
    messages = _require(body, "messages", list, "")
    if not messages:
        raise _fail("messages", "at least one message is required")
    for index in range(known, len(messages)):
        message = messages[index]
        path = f"messages.{index}"
        _expect(message, dict, path)
        role = _require(message, "role", str, f"{path}.")
        if role not in ROLES:
            raise _fail(f"{path}.role", _choices(ROLES))
        if "content" not in message:
            raise _fail(f"{path}.content", REQUIRED)
        _content(message["content"], f"{path}.content")


def _system(body: dict[str, Any]) -> None:
    system = body.get("system")
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _fail("system", "Input should be a valid string or a valid list")
    for index, block in enumerate(system):
        _block(block, f"system.{index}")


def _tools(body: dict[str, Any]) -> None:
    tools = _optional(body, "tools", list, "")
    if not tools:
        return
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        path = f"tools.{index}."
        _expect(tool, dict, path[:-1])
        name = _require(tool, "name", str, path)
        if not name:
            raise _fail(f"{path}name", "String should have at least 1 character")
        if name in seen:
            raise _fail("tools", f"Tool names must be unique (duplicate '{name}')")
        seen.add(name)
        _optional(tool, "strict", bool, path)
        kind = tool.get("type")
        if kind in (None, "custom"):
            _require(tool, "input_schema", dict, path)
            _optional(tool, "description", str, path)
        elif kind in MAX_CHARACTERS_TYPES:
            _integer(tool, "max_characters", 1, path)


def _output_format(spec: Any, path: str) -> None:
    if spec is None:
        return
    _expect(spec, dict, path)
    kind = _require(spec, "type", str, f"{path}.")
    if kind not in OUTPUT_FORMAT_TYPES:
        raise _fail(f"{path}.type", _choices(OUTPUT_FORMAT_TYPES))
    _require(spec, "schema", dict, f"{path}.")


def _structured_output(body: dict[str, Any]) -> None:
    """`output_config.format` and the beta top-level `output_format`, both read by the converter."""
    output_config = _optional(body, "output_config", dict, "")
    if output_config is not None:
        _output_format(output_config.get("format"), "output_config.format")
    _output_format(body.get("output_format"), "output_format")


def _tool_choice(body: dict[str, Any]) -> None:
    choice = _optional(body, "tool_choice", dict, "")
    if choice is None:
        return
    kind = _require(choice, "type", str, "tool_choice.")
    if kind not in TOOL_CHOICE_TYPES:
        raise _fail("tool_choice.type", _choices(TOOL_CHOICE_TYPES))
    if kind == "tool":
        _require(choice, "name", str, "tool_choice.")
    _optional(choice, "disable_parallel_tool_use", bool, "tool_choice.")


def _thinking(body: dict[str, Any]) -> None:
    thinking = _optional(body, "thinking", dict, "")
    if thinking is None:
        return
    kind = _require(thinking, "type", str, "thinking.")
    if kind != "enabled":
        return  # disabled, adaptive and future types carry nothing we read
    if "budget_tokens" not in thinking:
        raise _fail("thinking.budget_tokens", REQUIRED)
    budget = thinking["budget_tokens"]
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise _fail("thinking.budget_tokens", "Input should be a valid integer")
    if budget < MIN_THINKING_BUDGET:
        raise _fail("thinking.budget_tokens", f"Input should be greater than or equal to {MIN_THINKING_BUDGET}")


def _model(body: dict[str, Any]) -> None:
    model = _require(body, "model", str, "")
    if not model:
        raise _fail("model", "String should have at least 1 character")


def _body(body: Any, tools_known: bool = False, messages_known: int = 0) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequestError("Request body must be a JSON object")
    if exceeds_depth(_without_known(body, tools_known, messages_known) if tools_known or messages_known else body):
        raise InvalidRequestError(NESTING_MESSAGE)
    return body


def _without_known(body: dict[str, Any], tools_known: bool, messages_known: int) -> dict[str, Any]:
    """`body` less what passed in an earlier request (a value's depth in the body does not change)."""
    rest = dict(body)
    if tools_known:
        rest.pop("tools", None)
    if messages_known:
        rest["messages"] = rest["messages"][messages_known:]
    return rest


def _common(body: dict[str, Any], tools_known: bool = False, messages_known: int = 0) -> None:
    """What /v1/messages and count_tokens share, after `model` (and `max_tokens`) are checked."""
    _messages(body, messages_known)
    _system(body)
    if not tools_known:
        _tools(body)
    _tool_choice(body)
    _thinking(body)
    _structured_output(body)


def _sampling(body: dict[str, Any]) -> None:
    _unit_number(body, "temperature")
    _unit_number(body, "top_p")
    _integer(body, "top_k", 0)
    stops = _optional(body, "stop_sequences", list, "")
    for index, stop in enumerate(stops or ()):
        _expect(stop, str, f"stop_sequences.{index}")


def validate_messages_request(body: Any, tools_known: bool = False, messages_known: int = 0) -> None:
    """Raise `InvalidRequestError` when a /v1/messages body lacks or mistypes a field the converter reads.

    `tools_known`: the body's `tools` are the very list of an earlier request that passed, reused for bytes equal
    to its (ccproxy/splice.py `SplicedPieces.parse`): not walked again. `messages_known`: so are its first that many
    messages (ccproxy/history.py; each message is checked on its own)."""
    request = _body(body, tools_known, messages_known)
    _model(request)
    if "max_tokens" not in request:
        raise _fail("max_tokens", REQUIRED)
    if request["max_tokens"] is None:
        raise _fail("max_tokens", "Input should be a valid integer")
    _integer(request, "max_tokens", 0)
    _common(request, tools_known, messages_known)
    _sampling(request)
    _optional(request, "stream", bool, "")
    metadata = _optional(request, "metadata", dict, "")
    if metadata is not None:
        _optional(metadata, "user_id", str, "metadata.")


def validate_count_tokens_request(body: Any) -> None:
    """Raise `InvalidRequestError` when a count_tokens body is malformed (it has no `max_tokens`)."""
    request = _body(body)
    _model(request)
    _common(request)
