"""The real proxy process, driven by the `anthropic` SDK against the fake OpenAI upstream: Anthropic-defined client
tools, deeply nested bodies, structured output and strict tools."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import TextBlock, ToolUseBlock

from ccproxy.core.nesting import NESTING_MESSAGE
from tests.support.proxy_process import FakeUpstream, ProxyServer, start_proxy

pytestmark = pytest.mark.e2e

SONNET = "claude-sonnet-5"
BASH: Any = {"type": "bash_20250124", "name": "bash"}
EDITOR: Any = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "max_characters": 4000}
TITLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"title": {"type": "string"}},
    "required": ["title"],
    "additionalProperties": False,
}
HOSTILE_DEPTH = 50_000


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def only_tool_use(message: anthropic.types.Message) -> ToolUseBlock:
    (block,) = [block for block in message.content if isinstance(block, ToolUseBlock)]
    return block


def declared_functions(fake: FakeUpstream) -> dict[str, dict[str, Any]]:
    return {tool["function"]["name"]: tool["function"] for tool in fake.last_chat()["body"].get("tools", [])}


# --- Anthropic-defined client tools ------------------------------------------------------------------------


def test_bash_tool_round_trip(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    first = client.messages.create(
        model=SONNET, max_tokens=256, tools=[BASH], messages=user('CALL_TOOL bash {"command": "echo hi"}')
    )
    call = only_tool_use(first)
    assert (call.name, call.input) == ("bash", {"command": "echo hi"})
    assert first.stop_reason == "tool_use"
    function = declared_functions(fake)["bash"]
    assert set(function["parameters"]["properties"]) == {"command", "restart"}
    history: list[Any] = [
        *user('CALL_TOOL bash {"command": "echo hi"}'),
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "hi"}]},
    ]
    second = client.messages.create(model=SONNET, max_tokens=256, tools=[BASH], messages=history)
    assert "".join(b.text for b in second.content if isinstance(b, TextBlock)) == "TOOL_RESULT_SEEN: hi"
    replayed = fake.last_chat()["body"]["messages"]
    assert replayed[-2]["tool_calls"][0]["function"]["name"] == "bash"


def test_text_editor_call_in_a_stream(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    prompt = 'CALL_TOOL str_replace_based_edit_tool {"command": "view", "path": "/repo/a.py"}'
    with client.messages.stream(model=SONNET, max_tokens=256, tools=[BASH, EDITOR], messages=user(prompt)) as stream:
        message = stream.get_final_message()
    call = only_tool_use(message)
    assert (call.name, call.input) == ("str_replace_based_edit_tool", {"command": "view", "path": "/repo/a.py"})
    function = declared_functions(fake)["str_replace_based_edit_tool"]
    assert "4000 characters" in function["description"]
    assert function["parameters"]["properties"]["command"]["enum"] == ["view", "create", "str_replace", "insert"]


def test_server_tools_are_still_refused(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    web_search: Any = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=SONNET, max_tokens=64, tools=[BASH, web_search], messages=user("search"))
    assert "server tool 'web_search' (web_search_20250305)" in str(caught.value.body)
    assert fake.chat_requests() == []


# --- structured output -------------------------------------------------------------------------------------


def test_beta_output_format_reaches_the_upstream(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    client.messages.create(
        model=SONNET,
        max_tokens=64,
        messages=user("Name this session"),
        extra_body={"output_format": {"type": "json_schema", "schema": TITLE_SCHEMA}},
        extra_headers={"anthropic-beta": "structured-outputs-2025-11-13"},
    )
    assert fake.last_chat()["body"]["response_format"]["json_schema"]["schema"] == TITLE_SCHEMA


# --- deeply nested bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "stream"),
    [("/v1/messages", False), ("/v1/messages", True), ("/v1/messages/count_tokens", False)],
)
def test_hostile_nesting_is_a_400_on_every_endpoint(
    proxy: ProxyServer, fake: FakeUpstream, path: str, stream: bool
) -> None:
    deep = "[" * HOSTILE_DEPTH + "]" * HOSTILE_DEPTH
    raw = (
        '{"model":"claude-sonnet-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],'
        f'"stream":{json.dumps(stream)},"tools":[{{"name":"t","input_schema":{{"type":"object","x":{deep}}}}}]}}'
    )
    headers = {"content-type": "application/json", "x-api-key": "dummy", "anthropic-version": "2023-06-01"}
    response = httpx.post(proxy.base_url + path, content=raw.encode(), headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {"type": "invalid_request_error", "message": NESTING_MESSAGE}
    assert fake.chat_requests() == []
    log = proxy.process.log_text()
    assert not re.search(r"^\S+ \S+ (ERROR|CRITICAL) ", log, re.MULTILINE), log[-3000:]
    assert "Traceback" not in log


# --- strict tools: a proxy configured to send them ----------------------------------------------------------


@pytest.fixture(scope="module")
def strict_proxy(e2e_logs: Path, fake_upstream: FakeUpstream) -> Iterator[ProxyServer]:
    config = e2e_logs / "strict-plugins.toml"
    config.write_text('[plugins.openai.models."gpt-5"]\nsupports_strict_tools = true\n', encoding="utf-8")
    server = start_proxy(
        e2e_logs,
        upstream=fake_upstream,
        api_key=fake_upstream.api_key or "",
        big_model="gpt-5",
        small_model="gpt-4o-mini",
        config_path=config,
        name="proxy-strict-tools",
    )
    yield server
    server.stop_and_check()


def strict_tool(schema: dict[str, Any]) -> Any:
    return {"name": "set_title", "description": "Set the title", "input_schema": schema, "strict": True}


def test_strict_tool_reaches_a_model_configured_for_it(strict_proxy: ProxyServer, fake: FakeUpstream) -> None:
    with anthropic.Anthropic(base_url=strict_proxy.base_url, api_key="dummy", max_retries=0) as sdk:
        sdk.messages.create(
            model=SONNET,
            max_tokens=64,
            tools=[strict_tool(TITLE_SCHEMA)],
            messages=user('CALL_TOOL set_title {"title": "Hello"}'),
        )
    assert declared_functions(fake)["set_title"]["strict"] is True


def test_a_schema_openai_cannot_make_strict_gets_its_400(strict_proxy: ProxyServer, fake: FakeUpstream) -> None:
    optional = {**TITLE_SCHEMA, "properties": {**TITLE_SCHEMA["properties"], "note": {"type": "string"}}}
    with (
        anthropic.Anthropic(base_url=strict_proxy.base_url, api_key="dummy", max_retries=0) as sdk,
        pytest.raises(anthropic.BadRequestError) as caught,
    ):
        sdk.messages.create(model=SONNET, max_tokens=64, tools=[strict_tool(optional)], messages=user("title"))
    assert "Missing 'note'" in str(caught.value.body)
