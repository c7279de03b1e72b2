"""An example guardrail plugin: refuses requests naming a code name, masks ticket numbers in answers."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ccproxy import Guardrail, GuardrailContext, GuardrailEvent, ProxyError, StreamContext, StreamFilter, hookimpl

Audit = Callable[[GuardrailEvent], None]
TICKET = re.compile(r"TICKET-[0-9]{6}")
TICKET_LENGTH = len("TICKET-123456")
MASK = "[TICKET]"


class CodenameGuard(Guardrail):
    """Refuses requests whose text mentions the code name; masks ticket numbers in non-streamed answers."""

    name: ClassVar[str] = "example_guard"
    # It only reads requests: their parsed tools and repeated messages may be shared between requests.
    amends_tools: ClassVar[bool] = False
    amends_messages: ClassVar[bool] = False

    def __init__(self, codename: str, audit: Audit) -> None:
        self.codename = codename
        self.audit = audit

    async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        if self.codename in str(body.get("messages")) or self.codename in str(body.get("system", "")):
            self.audit(GuardrailEvent(context.request_id, self.name, "block", "request"))
            raise ProxyError(f"Request refused by guardrail {self.name!r}", status=403)

    async def check_response(self, message: dict[str, Any], context: GuardrailContext) -> None:
        count = 0
        for block in message["content"]:
            if block["type"] == "text":
                block["text"], found = TICKET.subn(MASK, block["text"])
                count += found
        if count:
            self.audit(GuardrailEvent(context.request_id, self.name, "redact", "response", count))


class TicketMask(StreamFilter):
    """Masks ticket numbers in streamed text. A ticket number has a fixed length, so holding back its length minus
    one character of each text block is enough to catch one split across deltas; the rest goes out at once."""

    def __init__(self, request_id: str, audit: Audit) -> None:
        self.request_id = request_id
        self.audit = audit
        self.held: dict[int, str] = {}
        self.count = 0

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
            text = self._mask(event["index"], event["delta"]["text"], final=False)
            if not text:
                return []
            event["delta"]["text"] = text
            return [event]
        if event["type"] == "content_block_stop" and event["index"] in self.held:
            rest = self._mask(event["index"], "", final=True)
            delta = {
                "type": "content_block_delta",
                "index": event["index"],
                "delta": {"type": "text_delta", "text": rest},
            }
            return [delta, event] if rest else [event]
        if event["type"] == "message_delta" and self.count:
            self.audit(GuardrailEvent(self.request_id, "example_guard", "redact", "response", self.count))
        return [event]

    def _mask(self, index: int, text: str, final: bool) -> str:
        text = self.held.pop(index, "") + text
        out, position = [], 0
        for found in TICKET.finditer(text):
            out += (text[position : found.start()], MASK)
            position = found.end()
            self.count += 1
        rest = text[position:]
        cut = len(rest) if final else max(0, len(rest) - (TICKET_LENGTH - 1))
        if not final:
            self.held[index] = rest[cut:]
        return "".join(out) + rest[:cut]


@hookimpl
def ccproxy_register_guardrails(
    register: Callable[[Guardrail], None], options: Mapping[str, Any], audit: Audit
) -> None:
    mine = options.get("example_guard")
    if isinstance(mine, Mapping):
        register(CodenameGuard(str(mine.get("codename", "PROJECT-X")), audit))


@hookimpl
def ccproxy_register_stream_filters(
    register: Callable[[Callable[[StreamContext], StreamFilter | None]], None], options: Mapping[str, Any], audit: Audit
) -> None:
    if isinstance(options.get("example_guard"), Mapping):
        register(lambda context: TicketMask(context.request_id, audit))
