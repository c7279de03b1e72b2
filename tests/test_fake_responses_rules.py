"""The fake Responses server refuses what api.openai.com refuses (tests/support/responses_rules.py), so a conversion
that would fail against OpenAI fails in the tests too."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.openai_rules import OpenAIError
from tests.support.responses_rules import ResponsesValidator

SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}}
TOOL = {"type": "function", "name": "Bash", "parameters": SCHEMA, "strict": False}
CALL = {"type": "function_call", "call_id": "call_1", "name": "Bash", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "done"}
USER = {"role": "user", "content": [{"type": "input_text", "text": "hi"}]}
GOOD: dict[str, Any] = {"model": "gpt-5.1", "input": [USER, CALL, OUTPUT], "tools": [TOOL], "store": False}


def check(body: dict[str, Any], issued: set[str] | None = None) -> None:
    ResponsesValidator(issued or set()).validate(body)


def test_a_well_formed_body_passes() -> None:
    reasoning = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-ours"}
    check(
        {**GOOD, "input": [USER, reasoning, CALL, OUTPUT], "include": ["reasoning.encrypted_content"]}, {"gAAAA-ours"}
    )


@pytest.mark.parametrize(
    ("change", "wording"),
    [
        ({"messages": []}, "Unknown parameter: 'messages'"),
        ({"max_completion_tokens": 100}, "Unknown parameter: 'max_completion_tokens'"),
        ({"tools": [{"type": "function", "function": {"name": "Bash", "parameters": SCHEMA}}]}, "tools[0].name"),
        ({"tools": [{**TOOL, "strict": True}]}, "'additionalProperties' is required"),
        ({"tools": [{key: value for key, value in TOOL.items() if key != "strict"}]}, "additionalProperties"),
        ({"input": [USER, OUTPUT]}, "No tool call found for function call output with call_id call_1"),
        ({"input": [USER, CALL]}, "No tool output found for function call call_1"),
        ({"max_output_tokens": 1}, "integer below minimum value"),
        ({"include": ["reasoning.encrypted_content"], "store": True}, "only supported with store=false"),
        ({"reasoning": {"effort": "max"}}, "reasoning.effort"),
        ({"input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, "Invalid value: 'text'"),
        (
            {"input": [USER, {"type": "reasoning", "summary": [], "encrypted_content": "forged"}]},
            "could not be verified",
        ),
        ({"input": [USER, {"type": "reasoning", "id": "rs_1", "summary": []}]}, "Items are not persisted"),
        ({"tool_choice": {"type": "function", "function": {"name": "Bash"}}}, "tool_choice"),
    ],
)
def test_what_openai_refuses_is_refused(change: dict[str, Any], wording: str) -> None:
    with pytest.raises(OpenAIError) as refused:
        check({**GOOD, **change})
    assert refused.value.status == 400 and wording in refused.value.message


def test_encrypted_reasoning_needs_store_false() -> None:
    reasoning = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-ours"}
    with pytest.raises(OpenAIError, match="store=false"):
        check({**GOOD, "input": [USER, reasoning], "store": True}, {"gAAAA-ours"})
