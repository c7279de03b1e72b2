"""The request checks api.openai.com applies to POST /v1/responses, with OpenAI's error wording.

What is rejected, as OpenAI does: unknown top-level fields; Chat-Completions-shaped tools (`{"type": "function",
"function": {...}}`: the Responses API wants `name` and `parameters` at the top); a function tool whose strict mode
(the Responses API's default!) its schema does not meet; `max_output_tokens` below 16; unknown reasoning efforts
and summary settings; input items of unknown types or with unknown fields; a `function_call_output` without its
`function_call` earlier in the input, and a `function_call` without its output; a reasoning item whose
`encrypted_content` this server did not issue; encrypted reasoning (asked for in `include`, or sent back in the
input) without `store: false`.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from .openai_rules import OpenAIError, invalid

KNOWN_FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "reasoning", "include",
        "store", "max_output_tokens", "stream", "stream_options", "temperature", "top_p", "text", "user",
        "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "metadata", "truncation",
        "previous_response_id", "service_tier", "background", "max_tool_calls", "top_logprobs", "conversation",
        "prompt",
    }
)  # fmt: skip
TOOL_FIELDS = frozenset({"type", "name", "description", "parameters", "strict"})
MESSAGE_FIELDS = frozenset({"type", "role", "content", "id", "status"})
ITEM_FIELDS: dict[str, frozenset[str]] = {
    "function_call": frozenset({"type", "call_id", "name", "arguments", "id", "status"}),
    "function_call_output": frozenset({"type", "call_id", "output", "id", "status"}),
    "reasoning": frozenset({"type", "summary", "encrypted_content", "id", "content", "status"}),
}
PARTS_BY_ROLE: dict[str, frozenset[str]] = {
    "user": frozenset({"input_text", "input_image", "input_file"}),
    "system": frozenset({"input_text"}),
    "developer": frozenset({"input_text"}),
    "assistant": frozenset({"output_text", "refusal"}),
}
PART_FIELDS: dict[str, frozenset[str]] = {
    "input_text": frozenset({"type", "text"}),
    "input_image": frozenset({"type", "image_url", "file_id", "detail"}),
    "input_file": frozenset({"type", "filename", "file_data", "file_id", "file_url"}),
    "output_text": frozenset({"type", "text", "annotations"}),
    "refusal": frozenset({"type", "refusal"}),
}
REASONING_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
REASONING_SUMMARIES = frozenset({"auto", "concise", "detailed"})
INCLUDABLE = frozenset({"reasoning.encrypted_content", "message.output_text.logprobs", "file_search_call.results"})
MIN_OUTPUT_TOKENS = 16


def unknown_parameter(name: str) -> OpenAIError:
    return invalid(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")


def missing(name: str) -> OpenAIError:
    return invalid(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")


class ResponsesValidator:
    """Checks one /v1/responses body; `issued` is the encrypted reasoning this server handed out."""

    def __init__(self, issued: Container[str]) -> None:
        self.issued = issued

    def validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        for name in body:
            if name not in KNOWN_FIELDS:
                raise unknown_parameter(name)
        if not isinstance(body.get("model"), str):
            raise missing("model")
        self._limits(body)
        self._reasoning(body)
        for index, tool in enumerate(body.get("tools") or ()):
            self._tool(index, tool)
        self._tool_choice(body)
        self._input(body)

    def _limits(self, body: dict[str, Any]) -> None:
        limit = body.get("max_output_tokens")
        if limit is not None and (not isinstance(limit, int) or limit < MIN_OUTPUT_TOKENS):
            raise invalid(
                f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, "
                f"but got {limit} instead.",
                param="max_output_tokens",
                code="integer_below_min_value",
            )

    def _reasoning(self, body: dict[str, Any]) -> None:
        reasoning = body.get("reasoning")
        if reasoning is not None:
            if not isinstance(reasoning, dict) or set(reasoning) - {"effort", "summary", "generate_summary"}:
                raise invalid("Invalid 'reasoning': expected an object with 'effort' and 'summary'.", "reasoning")
            if reasoning.get("effort") is not None and reasoning["effort"] not in REASONING_EFFORTS:
                raise invalid(f"Unsupported value: 'reasoning.effort' does not support {reasoning['effort']!r}.")
            if reasoning.get("summary") is not None and reasoning["summary"] not in REASONING_SUMMARIES:
                raise invalid(f"Invalid value: {reasoning['summary']!r}.", param="reasoning.summary")
        include = body.get("include") or []
        for entry in include:
            if entry not in INCLUDABLE:
                raise invalid(f"Invalid value: {entry!r}.", param="include")
        if "reasoning.encrypted_content" in include and body.get("store") is not False:
            raise invalid(
                "Encrypted content is only supported with store=false: set 'store' to false to include "
                "'reasoning.encrypted_content'.",
                param="include",
            )

    def _tool(self, index: int, tool: Any) -> None:
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid(f"Invalid value for '{where}.type'.", param=f"{where}.type")
        if "name" not in tool:
            raise missing(f"{where}.name")
        for name in tool:
            if name not in TOOL_FIELDS:
                raise unknown_parameter(f"{where}.{name}")
        if tool.get("strict", True) is not False:
            schema = tool.get("parameters") or {}
            if schema.get("additionalProperties") is not False:
                raise invalid(
                    f"Invalid schema for function '{tool['name']}': In context=(), 'additionalProperties' is "
                    "required to be supplied and to be false.",
                    param=f"{where}.parameters",
                    code="invalid_function_parameters",
                )

    def _tool_choice(self, body: dict[str, Any]) -> None:
        choice = body.get("tool_choice")
        if choice is None or choice in ("auto", "required", "none"):
            return
        names = {tool.get("name") for tool in body.get("tools") or ()}
        if not isinstance(choice, dict) or choice.get("type") != "function" or choice.get("name") not in names:
            raise invalid("Invalid value for 'tool_choice'.", param="tool_choice")

    def _input(self, body: dict[str, Any]) -> None:
        items = body.get("input")
        if isinstance(items, str):
            return
        if not isinstance(items, list):
            raise missing("input")
        calls: set[str] = set()
        answered: set[str] = set()
        for index, item in enumerate(items):
            where = f"input[{index}]"
            if not isinstance(item, dict):
                raise invalid(f"Invalid type for '{where}': expected an object.", param=where)
            kind = item.get("type", "message")
            if kind == "message":
                self._message(where, item)
            elif kind in ITEM_FIELDS:
                for name in item:
                    if name not in ITEM_FIELDS[kind]:
                        raise unknown_parameter(f"{where}.{name}")
                if kind == "function_call":
                    self._function_call(where, item, calls)
                elif kind == "function_call_output":
                    if item.get("call_id") not in calls:
                        raise invalid(
                            f"No tool call found for function call output with call_id {item.get('call_id')}.",
                            param="input",
                        )
                    answered.add(item["call_id"])
                else:
                    self._reasoning_item(where, item, body)
            else:
                raise invalid(f"Invalid value: '{kind}'.", param=f"{where}.type")
        unanswered = sorted(calls - answered)
        if unanswered:
            raise invalid(f"No tool output found for function call {unanswered[0]}.", param="input")

    def _message(self, where: str, item: dict[str, Any]) -> None:
        for name in item:
            if name not in MESSAGE_FIELDS:
                raise unknown_parameter(f"{where}.{name}")
        role = item.get("role")
        if role not in PARTS_BY_ROLE:
            raise invalid(f"Invalid value: '{role}'.", param=f"{where}.role")
        content = item.get("content")
        if isinstance(content, str):
            return
        if not isinstance(content, list) or not content:
            raise invalid(f"Invalid '{where}.content': expected a string or a non-empty array.", f"{where}.content")
        for position, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in PARTS_BY_ROLE[role]:
                raise invalid(f"Invalid value: '{kind}'.", param=f"{where}.content[{position}].type")
            for name in part:
                if name not in PART_FIELDS[kind]:
                    raise unknown_parameter(f"{where}.content[{position}].{name}")
            if kind == "input_image" and not (part.get("image_url") or part.get("file_id")):
                raise missing(f"{where}.content[{position}].image_url")

    def _function_call(self, where: str, item: dict[str, Any], calls: set[str]) -> None:
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise missing(f"{where}.{name}")
        calls.add(item["call_id"])

    def _reasoning_item(self, where: str, item: dict[str, Any], body: dict[str, Any]) -> None:
        if not isinstance(item.get("summary"), list):
            raise missing(f"{where}.summary")
        encrypted = item.get("encrypted_content")
        if encrypted is None:
            # Without encrypted content the item is looked up by id, which store=false never kept.
            raise invalid(
                f"Item with id '{item.get('id')}' not found. Items are not persisted when `store` is set to false.",
                param="input",
            )
        if body.get("store") is not False:
            raise invalid("Encrypted reasoning items can only be sent with store=false.", param="store")
        if encrypted not in self.issued:
            raise invalid(
                f"The encrypted content for item {where} could not be verified.",
                param="input",
                code="invalid_encrypted_content",
            )
