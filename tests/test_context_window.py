"""A backend model's known context window (`context_window`, in a `models."<name>"` table or from its provider):
max_tokens clamped to what the prompt leaves, and a prompt that cannot fit answered as Anthropic's "prompt is too
long" without calling the upstream; think tags split for `think_tags` models; against FakeUpstreams."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ccproxy.core.overflow import prompt_too_long
from ccproxy.errors import ProxyError
from ccproxy.pipeline import BACKEND_HEADER
from ccproxy.settings import SettingsError
from ccproxy.upstream.fake import FakeResponse
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tests.support.backends import Rig, answer, backends_toml, completion, make_rig, sse_chunks

WINDOW = 4096


def rig_with(models: str, handler: Any = answer) -> Rig:
    return make_rig(backends_toml({"local": f"retries = 0\n{models}"}, {"claude-*": "local:m"}), {"local": handler})


def request(words: int, max_tokens: int = 32_000, stream: bool = False) -> dict[str, Any]:
    text = " ".join(f"word{n % 50}" for n in range(words))
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


async def complete(rig: Rig, body: dict[str, Any]) -> Any:
    await rig.pipeline.token_counter()  # loaded in a worker thread, which the fake clock cannot drive
    prepared = await rig.pipeline.prepare(json.dumps(body).encode(), {}, "req_window")
    return await rig.clock.run(rig.pipeline.complete(prepared))


async def stream(rig: Rig, body: dict[str, Any]) -> list[dict[str, Any]]:
    await rig.pipeline.token_counter()
    prepared = await rig.pipeline.prepare(json.dumps({**body, "stream": True}).encode(), {}, "req_window")
    opened = await rig.clock.run(rig.pipeline.open_stream(prepared))

    async def collect() -> bytes:
        return b"".join([data async for data in rig.pipeline.stream_events(prepared, opened)])

    return parse_sse(await rig.clock.run(collect()))


async def test_max_tokens_is_clamped_to_what_the_prompt_leaves_in_the_window() -> None:
    rig = rig_with(f'models."m".context_window = {WINDOW}')
    await complete(rig, request(words=600))
    sent = rig.sent("local")["max_tokens"]
    assert 0 < sent < WINDOW - 600  # the prompt (about 1,200 tokens with margin) is left room
    assert sent > WINDOW - 2000


async def test_a_request_that_fits_keeps_its_max_tokens_and_is_not_counted() -> None:
    rig = rig_with(f'models."m".context_window = {WINDOW}')
    prepared = await rig.pipeline.prepare(json.dumps(request(words=10, max_tokens=500)).encode(), {}, "req")
    await rig.clock.run(rig.pipeline.complete(prepared))
    assert rig.sent("local")["max_tokens"] == 500
    assert prepared.prompt_tokens is None  # the byte estimate settled it: no tokenizer on this path


async def test_without_a_window_max_tokens_passes_unchanged() -> None:
    rig = rig_with("")
    await complete(rig, request(words=600))
    assert rig.sent("local")["max_tokens"] == 32_000


async def test_a_prompt_over_the_window_is_answered_as_prompt_too_long_without_a_call() -> None:
    rig = rig_with(f'models."m".context_window = {WINDOW}')
    with pytest.raises(ProxyError) as info:
        await complete(rig, request(words=5000))
    error = info.value
    assert (error.status, error.error_type) == (400, "invalid_request_error")
    match = re.fullmatch(r"prompt is too long: (\d+) tokens > 4096 maximum", error.message)
    assert match is not None and int(match.group(1)) > WINDOW, error.message
    assert prompt_too_long(error.message) == error.message  # the wording Claude Code compacts on
    assert error.headers[BACKEND_HEADER] == "local"
    assert rig.calls("local") == 0


async def test_a_stream_is_clamped_too() -> None:
    rig = rig_with(f'models."m".context_window = {WINDOW}')
    events = await stream(rig, request(words=600))
    check_stream(events)
    assert rig.sent("local")["max_tokens"] < WINDOW - 600


# --- think tags through the pipeline -------------------------------------------------------------------------------

TAGGED = "<think>\nplan the answer\n</think>\n\nDone."
EXPECTED = [{"type": "thinking", "thinking": "plan the answer", "signature": ""}, {"type": "text", "text": "Done."}]


def tagged(request: Any) -> FakeResponse:
    if request.stream:
        pieces = [TAGGED[at : at + 3] for at in range(0, len(TAGGED), 3)]  # tags cut across chunks
        return FakeResponse(200, {"content-type": "text/event-stream"}, chunks=sse_chunks(*pieces))
    return FakeResponse.json(completion(TAGGED))


async def test_a_think_tags_model_answers_with_a_thinking_block_streamed_or_not() -> None:
    rig = rig_with('models."m".think_tags = true', tagged)
    assert (await complete(rig, request(words=3, max_tokens=100))).message["content"] == EXPECTED
    events = await stream(rig, request(words=3, max_tokens=100))
    check_stream(events)
    assert accumulate(events)["content"] == EXPECTED


async def test_other_models_keep_the_tags_as_text() -> None:
    rig = rig_with("", tagged)
    assert (await complete(rig, request(words=3, max_tokens=100))).message["content"] == [
        {"type": "text", "text": TAGGED}
    ]


def test_a_window_of_zero_or_less_stops_start_up_naming_the_key() -> None:
    with pytest.raises(
        SettingsError, match=r"backends\.local\.models\.m\.context_window: expected a number of tokens > 0, got 0"
    ):
        rig_with('models."m".context_window = 0')


async def test_a_prompt_over_one_targets_window_falls_back_to_the_next() -> None:
    toml = backends_toml(
        {"small": f'retries = 0\nmodels."m".context_window = {WINDOW}', "big": "retries = 0"},
        {"claude-*": ["small:m", "big:m"]},
    )
    rig = make_rig(toml, {})
    result = await complete(rig, request(words=5000))
    assert result.target.backend == "big"
    assert (rig.calls("small"), rig.calls("big")) == (0, 1)
