"""The pipeline splices the converted system prompt and tools into what it sends (ccproxy/splice.py): every
target of a route, and every request after the first, gets the bytes converting afresh would give."""

from __future__ import annotations

import json
from typing import Any

from ccproxy.core.jsoncodec import loads
from ccproxy.core.plan import RequestPlan
from ccproxy.splice import Adjust
from tests.support.backends import Rig, backends_toml, make_rig
from tests.support.fixtures import claude_code_posts

ROUTES = backends_toml(
    {"a": "", "b": "models.big.system_role = 'developer'"}, {"claude-*": ["a:small"], "other-*": ["b:big"]}
)
BODIES = [capture.body for capture in claude_code_posts("/v1/messages") if capture.body.get("tools")][:3]


class NoPieces:
    """Stands in for SplicedPieces: never splices, so the pipeline parses and serialises every body afresh."""

    def parse(self, raw: bytes, tools: bool = True, messages: bool = False) -> None:
        return None

    def learn_messages(self, raw: bytes, parsed: None, body: dict[str, Any]) -> None:
        pass

    def body(
        self, raw: bytes, body: dict[str, Any], plan: RequestPlan, adjust: Adjust, amended: bool, turn: None
    ) -> None:
        return None


async def sent_bytes(rig: Rig, body: dict[str, Any]) -> list[bytes]:
    """What each backend was sent for `body` (its model routed to "a", then to "b")."""
    sent = []
    for model, name in (("claude-sonnet-4-5", "a"), ("other-model", "b")):
        raw = json.dumps({**body, "model": model, "stream": False}, ensure_ascii=False, separators=(",", ":"))
        prepared = await rig.pipeline.prepare(raw.encode(), {}, "req_test")
        await rig.clock.run(rig.pipeline.complete(prepared))
        sent.append(bytes(rig.fakes[name].requests[-1].body))
    return sent


def chain_rig() -> Rig:
    return make_rig(ROUTES, {})


async def test_every_request_and_target_gets_the_bytes_converted_afresh() -> None:
    spliced, fresh = chain_rig(), chain_rig()
    fresh.pipeline.pieces = NoPieces()  # type: ignore[assignment]  # a stand-in with the one method used
    for _ in range(2):
        for body in BODIES:
            got, expected = await sent_bytes(spliced, body), await sent_bytes(fresh, body)
            assert got != [b"", b""]
            assert got == expected
            assert loads(got[1])["messages"][0]["role"] == "developer"  # each target's own conversion
    assert len(spliced.pipeline.pieces.lru) > 0


def test_a_pipeline_owns_its_pieces() -> None:
    first, second = chain_rig().pipeline, chain_rig().pipeline
    assert first.pieces is not second.pieces
