"""The demo's canned answers: an OpenAI Chat Completions request in, a deterministic reply out (no model anywhere)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

DEMO_MODEL = "demo"
# How much of the user's words and of a tool's output the answers quote.
QUOTED_CHARS = 120
# Claude Code adds notes to the user's message in text parts of their own.
CLIENT_NOTE = "<system-reminder>"
# Claude Code's shell tool; a harmless `echo` shows its whole tool loop (permission prompt, run, result, answer).
BASH_TOOL = "Bash"
BASH_ARGUMENTS = {
    "command": "echo 'Hello from the ccproxy demo'",
    "description": "Print a greeting (ccproxy demo: a canned tool call)",
}
# Placeholder arguments for a tool that is not Bash, by JSON Schema type.
PLACEHOLDERS: dict[str, Any] = {"string": "demo", "integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True, slots=True)
class Reply:
    """What the demo answers to one request."""

    id: str
    reasoning: str
    text: str
    tool_call: ToolCall | None
    prompt_tokens: int
    completion_tokens: int

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_call is not None else "stop"


def reply_to(body: dict[str, Any], body_bytes: int) -> Reply:
    """The answer to a converted request: a tool-result acknowledgement after a tool turn, a tool call when tools
    are offered, otherwise text; reasoning first when the request asks for it (`reasoning_effort`)."""
    messages = [message for message in body.get("messages") or () if isinstance(message, dict)]
    turn = _last_turn(messages)
    results = [_text(message.get("content")) for message in turn if message.get("role") == "tool"]
    said = _excerpt(_said(turn))
    # Ids follow from the conversation alone, so a streamed and a plain request get the same answer.
    conversation = {"messages": messages, "tools": body.get("tools")}
    digest = hashlib.sha256(json.dumps(conversation, sort_keys=True, default=str).encode()).hexdigest()
    tool_call = None
    if results:
        text = (
            f'The tool answered: "{_excerpt(" ".join(results))}". That completes the demo\'s tool loop. (ccproxy '
            "demo provider: canned answers, no model was called.)"
        )
    else:
        tool_call = _tool_call(body, digest)
        if tool_call is None:
            text = (
                f'Hello from the ccproxy demo provider. You said: "{said}". This is a canned answer: no model was '
                "called and no key is needed. Configure a real backend to get real answers."
            )
        else:
            text = f"I will run the {tool_call.name} tool to show a tool call (a canned demo answer)."
    reasoning = ""
    if body.get("reasoning_effort"):
        heard = "The tool has answered" if results else f'The user said "{said}"'
        reasoning = f"{heard}. I am the ccproxy demo provider, so my answer is canned."
    completion = len(reasoning) + len(text) + (len(tool_call.arguments) if tool_call else 0)
    return Reply(
        id=f"chatcmpl-demo-{digest[:24]}",
        reasoning=reasoning,
        text=text,
        tool_call=tool_call,
        prompt_tokens=max(1, body_bytes // 4),
        completion_tokens=max(1, completion // 4),
    )


def _last_turn(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages after the last assistant message: the tool results and the user's words of this turn."""
    for position in range(len(messages) - 1, -1, -1):
        if messages[position].get("role") == "assistant":
            return messages[position + 1 :]
    return messages


def _tool_call(body: dict[str, Any], digest: str) -> ToolCall | None:
    """Bash with a harmless echo when offered, else the first offered function with placeholder arguments."""
    tools = [tool.get("function") for tool in body.get("tools") or () if isinstance(tool, dict)]
    functions = [function for function in tools if isinstance(function, dict) and isinstance(function.get("name"), str)]
    if not functions or body.get("tool_choice") == "none":
        return None
    call_id = f"call_demo_{digest[:20]}"
    bash = next((function for function in functions if function["name"] == BASH_TOOL), None)
    if bash is not None:
        return ToolCall(call_id, BASH_TOOL, json.dumps(BASH_ARGUMENTS))
    chosen = functions[0]
    return ToolCall(call_id, chosen["name"], json.dumps(_placeholder_arguments(chosen.get("parameters"))))


def _placeholder_arguments(schema: Any) -> dict[str, Any]:
    """A value of the declared type for each required property."""
    if not isinstance(schema, dict):
        return {}
    declared_properties = schema.get("properties")
    properties: dict[str, Any] = declared_properties if isinstance(declared_properties, dict) else {}
    required = [name for name in schema.get("required") or () if isinstance(name, str)]
    arguments: dict[str, Any] = {}
    for name in required:
        declared = properties.get(name)
        kind = declared.get("type") if isinstance(declared, dict) else None
        arguments[name] = PLACEHOLDERS.get(kind if isinstance(kind, str) else "string", "demo")
    return arguments


def _said(turn: list[dict[str, Any]]) -> str:
    """The user's last words in this turn: the last text part that is not a note the client added."""
    for message in reversed(turn):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        parts = [content] if isinstance(content, str) else [_text([part]) for part in content or ()]
        for text in reversed(parts):
            if text.strip() and not text.lstrip().startswith(CLIENT_NOTE):
                return text
    return "(nothing)"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= QUOTED_CHARS else flat[: QUOTED_CHARS - 3] + "..."
