"""An Anthropic request -> an OpenAI Responses API body (`POST /responses`), by way of the core's Chat Completions body.

The core converts the Anthropic grammar once (system text, billing header dropped, images and PDFs, tool results
with their attachments, client tools, tool names shortened, tool choice, structured output, sampling, user id,
max_tokens clamped); this module reshapes that body into the Responses API's:

- the leading system/developer messages -> `instructions`; later ones -> developer/system input messages in place;
- user messages -> `{"role": "user", "content": [input_text | input_image | input_file ...]}`;
- assistant messages -> their reasoning items (restored from thinking blocks, below), an assistant message with the
  text, then one `function_call` item per tool call; tool messages -> `function_call_output` items;
- function tools -> the flat `{"type": "function", "name", "description", "parameters", "strict"}` shape, with
  `strict: false` written out (the Responses API's default is strict, which Claude Code's schemas do not meet);
- `max_completion_tokens` / `max_tokens` -> `max_output_tokens` (at least 16, the API's minimum: Claude Code's quota
  probe asks for 1); `response_format` -> `text.format`; `stop`, `top_k` and `stream_options` have no counterpart
  and are left out; the Chat `user` value becomes `safety_identifier` and `prompt_cache_key`.
- reasoning: the effort the reasoning configurator chose (`reasoning_effort`, or a `reasoning` object) ->
  `reasoning: {"effort", "summary": "auto"}` with `include: ["reasoning.encrypted_content"]`; every request says
  `store: false`, so no state is kept upstream.

Reasoning across turns without server state: each reasoning item's `encrypted_content` reaches the client inside
the thinking block's `signature`, marked with SIGNATURE_PREFIX (responses_answer.py). When Claude Code sends the
block back, the core's `reasoning_details` replay carries it onto the assistant message, and it becomes a
`{"type": "reasoning", "encrypted_content", "summary"}` input item again, ahead of that turn's text and function
calls, as the API produced them. Thinking blocks without the prefix (another vendor's, or unsigned) are not sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ccproxy_openai.responses_answer import encrypted_reasoning

# The Responses API refuses a smaller max_output_tokens ("integer below minimum value").
MIN_OUTPUT_TOKENS = 16
ENCRYPTED_REASONING = "reasoning.encrypted_content"
# Chat Completions fields with the same name and meaning in the Responses API.
_SAME_FIELDS = ("model", "temperature", "top_p", "parallel_tool_calls", "stream")

Item = dict[str, Any]


def responses_body(chat: dict[str, Any]) -> dict[str, Any]:
    """The Responses API body for a Chat Completions body made by the core (with `reasoning_details` replay)."""
    instructions, items = _input_items(chat["messages"])
    body: dict[str, Any] = {"model": chat["model"]}
    if instructions:
        body["instructions"] = instructions
    body["input"] = items
    tools = chat.get("tools")
    if tools:
        body["tools"] = [_tool(tool) for tool in tools]
        if "tool_choice" in chat:
            body["tool_choice"] = _tool_choice(chat["tool_choice"])
    for name in _SAME_FIELDS[1:]:
        if name in chat:
            body[name] = chat[name]
    limit = chat.get("max_completion_tokens", chat.get("max_tokens"))
    if isinstance(limit, int):
        body["max_output_tokens"] = max(limit, MIN_OUTPUT_TOKENS)
    user = chat.get("user")
    if user:
        body["safety_identifier"] = user
        body["prompt_cache_key"] = user
    response_format = chat.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = response_format["json_schema"]
        body["text"] = {"format": {"type": "json_schema", **schema}}
    effort = _effort(chat)
    if effort is not None:
        body["reasoning"] = {"effort": effort, "summary": "auto"}
        body["include"] = [ENCRYPTED_REASONING]
    body["store"] = False
    return body


def _effort(chat: dict[str, Any]) -> str | None:
    """The reasoning effort the configurator chose: `reasoning_effort`, or `reasoning.effort`."""
    effort = chat.get("reasoning_effort")
    if effort is None and isinstance(chat.get("reasoning"), dict):
        effort = chat["reasoning"].get("effort")
    return effort if isinstance(effort, str) and effort else None


# ------------------------------------------------------------------------------------------ input items


def _input_items(messages: list[dict[str, Any]]) -> tuple[str, list[Item]]:
    """`instructions` (the leading system text) and the input items for the rest of the messages."""
    leading: list[str] = []
    position = 0
    while position < len(messages) and messages[position]["role"] in ("system", "developer"):
        leading.append(messages[position]["content"])
        position += 1
    items: list[Item] = []
    for message in messages[position:]:
        items.extend(_MESSAGE_ITEMS[message["role"]](message))
    return "\n\n".join(leading), items


def _instruction_message(message: dict[str, Any]) -> list[Item]:
    return [{"role": message["role"], "content": message["content"]}]


def _user_message(message: dict[str, Any]) -> list[Item]:
    content = message["content"]
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    return [{"role": "user", "content": [_input_part(part) for part in parts]}]


def _input_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part["type"]
    if kind == "image_url":
        return {"type": "input_image", "image_url": part["image_url"]["url"], "detail": "auto"}
    if kind == "file":
        return {"type": "input_file", **part["file"]}
    return {"type": "input_text", "text": part["text"]}


def _assistant_message(message: dict[str, Any]) -> list[Item]:
    items = [item for item in map(_reasoning_item, message.get("reasoning_details") or ()) if item is not None]
    if message.get("content"):
        items.append({"type": "message", "role": "assistant", "content": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call["function"]
        items.append(
            {
                "type": "function_call",
                "call_id": call["id"],
                "name": function["name"],
                "arguments": function["arguments"],
            }
        )
    return items


def _reasoning_item(detail: dict[str, Any]) -> Item | None:
    """A thinking block (as the core's `reasoning_details` entry) -> the reasoning item it came from, or None for a
    block this wire did not make."""
    encrypted = encrypted_reasoning(detail.get("signature"))
    if encrypted is None:
        return None
    text = detail.get("text")
    summary = [{"type": "summary_text", "text": text}] if isinstance(text, str) and text else []
    return {"type": "reasoning", "summary": summary, "encrypted_content": encrypted}


def _tool_output(message: dict[str, Any]) -> list[Item]:
    return [{"type": "function_call_output", "call_id": message["tool_call_id"], "output": message["content"]}]


_MESSAGE_ITEMS: dict[str, Callable[[dict[str, Any]], list[Item]]] = {
    "system": _instruction_message,
    "developer": _instruction_message,
    "user": _user_message,
    "assistant": _assistant_message,
    "tool": _tool_output,
}


# ------------------------------------------------------------------------------------------ tools


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    flat: dict[str, Any] = {"type": "function", "name": function["name"]}
    if "description" in function:
        flat["description"] = function["description"]
    flat["parameters"] = function["parameters"]
    flat["strict"] = function.get("strict") is True
    return flat


def _tool_choice(choice: Any) -> Any:
    """ "auto" / "required" / "none" as they are; a named function in the flat shape."""
    if isinstance(choice, dict):
        return {"type": "function", "name": choice["function"]["name"]}
    return choice
