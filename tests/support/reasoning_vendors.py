"""The fake upstream as DeepSeek V4 and as Mistral: their request rules about reasoning, and DeepSeek's thinking mode.

Chosen by the request's model name (`vendor_rules`), whatever the prompt; every other model is served as OpenAI.

DeepSeek V4 (`deepseek-v4*`, any vendor prefix; wire.md 4.9, DeepSeek's thinking-mode guide):
- top-level `thinking: {"type": "enabled"|"disabled"}` is accepted (anything else is a 400); thinking is ON when it
  is absent, as on DeepSeek's API;
- `reasoning_effort` is accepted, except beside `thinking: {"type": "disabled"}` (400, DeepSeek's wording);
- assistant messages may carry `reasoning_content`; in thinking mode, an assistant message with `tool_calls`
  anywhere in the history WITHOUT a `reasoning_content` string is refused with DeepSeek's 400 ("The
  `reasoning_content` in the thinking mode must be passed back to the API.");
- in thinking mode every answer streams `reasoning_content` deltas first (DEEPSEEK_REASONING), then its text or
  tool calls; `TOOL_ROUNDS_<n>` in a user message makes a tool loop of n rounds: while fewer than n assistant
  messages with tool calls follow the last user message carrying the marker, the answer is one more Bash call
  (`echo round-<k>`), then the usual `TOOL_RESULT_SEEN: ...` text.

Mistral (`mistral*`, `magistral*`, `codestral*`, `devstral*`, `ministral*`, `open-mistral*`, `mixtral*`): any field
OpenAI's Chat Completions does not define, top-level or on a message (`reasoning_content`, `reasoning_details`,
`reasoning`, `thinking`, `enable_thinking`, ...), is Mistral's 422 `extra_forbidden`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from .openai_rules import KNOWN_FIELDS, MESSAGE_FIELDS, OpenAIError, RequestValidator

DEEPSEEK_V4 = ("deepseek-v4", "deepseek-v4[-._:]*")
MISTRAL = ("mistral*", "magistral*", "codestral*", "devstral*", "ministral*", "open-mistral*", "mixtral*")
THINKING_TYPES = ("enabled", "disabled")
DEEPSEEK_REPLAY_MESSAGE = "The `reasoning_content` in the thinking mode must be passed back to the API."
DEEPSEEK_EFFORT_CONFLICT = "thinking options type cannot be disabled when reasoning_effort is set"
DEEPSEEK_REASONING = "The user wants a shell command run; I will call Bash and read its output."
TOOL_ROUNDS = re.compile(r"(?<![A-Za-z0-9])TOOL_ROUNDS_(\d+)(?![A-Za-z0-9])")


class VendorAnswer(OpenAIError):
    """An error answered with the vendor's own body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, str(body))
        self.vendor_body = body

    def body(self) -> dict[str, Any]:
        return self.vendor_body


def deepseek_error(message: str) -> OpenAIError:
    """DeepSeek's 400: OpenAI's shape with `code` equal to `type`."""
    return OpenAIError(400, message, error_type="invalid_request_error", code="invalid_request_error")


def _bare(model: str) -> str:
    return model.lower().rsplit("/", 1)[-1]


def _matches(model: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatchcase(_bare(model), glob) for glob in globs)


@dataclass
class DeepSeekV4:
    """DeepSeek V4's rules (see the module docstring)."""

    def validate(self, body: dict[str, Any]) -> None:
        thinking = body.get("thinking")
        if thinking is not None and (not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES):
            raise deepseek_error(f"Invalid thinking option: {thinking!r}")
        if self.thinking_disabled(body) and "reasoning_effort" in body:
            raise deepseek_error(DEEPSEEK_EFFORT_CONFLICT)
        for message in body.get("messages") or ():
            content = message.get("reasoning_content") if isinstance(message, dict) else None
            if content is not None and not isinstance(content, str):
                raise deepseek_error("reasoning_content must be a string")
        if not self.thinking_disabled(body) and self._missing_replay(body):
            raise deepseek_error(DEEPSEEK_REPLAY_MESSAGE)
        # The rest as OpenAI checks it, without the fields DeepSeek adds.
        plain = {key: value for key, value in body.items() if key not in ("thinking", "reasoning_effort")}
        plain["messages"] = [_without(message, "reasoning_content") for message in body.get("messages") or ()]
        RequestValidator().validate(plain)

    @staticmethod
    def thinking_disabled(body: dict[str, Any]) -> bool:
        thinking = body.get("thinking")
        return isinstance(thinking, dict) and thinking.get("type") == "disabled"

    @staticmethod
    def _missing_replay(body: dict[str, Any]) -> bool:
        return any(
            isinstance(message, dict)
            and message.get("role") == "assistant"
            and message.get("tool_calls")
            and not isinstance(message.get("reasoning_content"), str)
            for message in body.get("messages") or ()
        )

    def shape(self, reply: Any, body: dict[str, Any], tool_call: Any) -> None:
        """Thinking mode: reasoning first, and the TOOL_ROUNDS loop (`tool_call(name, arguments)` makes a call)."""
        if self.thinking_disabled(body) or reply.error is not None:
            return
        reply.reasoning = DEEPSEEK_REASONING
        rounds, done = tool_loop(body.get("messages") or [])
        if done < rounds:
            reply.text = ""
            reply.tool_calls = [tool_call("Bash", {"command": f"echo round-{done + 1}", "description": "Echo"})]


@dataclass
class Mistral:
    """Mistral's strictness: unknown fields are a 422."""

    def validate(self, body: dict[str, Any]) -> None:
        for key in body:
            if key not in KNOWN_FIELDS:
                raise mistral_extra_forbidden(["body", key], body[key])
        for index, message in enumerate(body.get("messages") or ()):
            role = message.get("role") if isinstance(message, dict) else None
            for key in message if role in MESSAGE_FIELDS else ():
                if key not in MESSAGE_FIELDS[role]:
                    raise mistral_extra_forbidden(["body", "messages", index, role, key], message[key])
        RequestValidator().validate(body)

    def shape(self, reply: Any, body: dict[str, Any], tool_call: Any) -> None:
        return None


def mistral_extra_forbidden(loc: list[Any], value: Any) -> VendorAnswer:
    """Mistral's 422 for a field it does not define (pydantic's `extra_forbidden`)."""
    detail = {"type": "extra_forbidden", "loc": loc, "msg": "Extra inputs are not permitted", "input": value}
    return VendorAnswer(
        422,
        {
            "object": "error",
            "message": {"detail": [detail]},
            "type": "invalid_request_message_error",
            "param": None,
            "code": None,
        },
    )


def vendor_rules(body: Any) -> DeepSeekV4 | Mistral | None:
    """The vendor whose rules apply to this request (by its model name), or None for OpenAI's."""
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str):
        return None
    if _matches(model, DEEPSEEK_V4):
        return DeepSeekV4()
    if _matches(model, MISTRAL):
        return Mistral()
    return None


def _without(message: Any, key: str) -> Any:
    return {k: v for k, v in message.items() if k != key} if isinstance(message, dict) else message


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def tool_loop(messages: list[Any]) -> tuple[int, int]:
    """(rounds asked for by the last TOOL_ROUNDS_<n> marker, assistant tool-call messages after it); (0, 0)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        found = TOOL_ROUNDS.search(_text(message))
        if found:
            later = messages[index + 1 :]
            done = sum(1 for m in later if isinstance(m, dict) and m.get("role") == "assistant" and m.get("tool_calls"))
            return int(found.group(1)), done
    return 0, 0
