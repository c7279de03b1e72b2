"""The HTTP protocol ccproxy serves with: Sanic's, with REQUEST_TIMEOUT bounding a request's head and body together,
counted from its first byte.

Sanic restarts its timeout with every byte received, so a client trickling a byte now and then holds a connection
(and the buffers behind it) as long as it likes: an unfinished body was held for RESPONSE_TIMEOUT (900 s). Here the
bytes of a request that is still arriving do not move the clock back, and a body still arriving once the head is in
is bounded by the same REQUEST_TIMEOUT (Sanic would apply RESPONSE_TIMEOUT to it). Answers are not affected.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

from sanic import Sanic
from sanic.exceptions import RequestTimeout
from sanic.http import Stage
from sanic.server.protocols.http_protocol import HttpProtocol


class DeadlineHttpProtocol(HttpProtocol):
    """HttpProtocol whose request timeout runs from the first byte of a request to the last byte of its body."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        if not self._receiving_request():
            super().data_received(data)
            return
        started = self._time
        super().data_received(data)
        self._time = started  # a trickled byte does not restart the request's clock

    def check_timeouts(self) -> None:
        http = getattr(self, "_http", None)
        task = self._task
        if (
            task is not None
            and http is not None
            and http.stage is Stage.HANDLER
            and http.request_body
            and monotonic() - self._time > self.request_timeout
        ):
            http.exception = RequestTimeout("Request Timeout: the request body did not arrive in time")
            task.cancel("Cancel connection task with a timeout")  # what Sanic does for its own timeouts
            return
        super().check_timeouts()  # type: ignore[no-untyped-call]  # Sanic does not annotate it

    def _receiving_request(self) -> bool:
        """Whether incoming bytes belong to a request still arriving (its head, or its body once the head is in)."""
        http = getattr(self, "_http", None)  # unset until the connection's task has started
        if http is None:
            return False
        return http.stage is Stage.REQUEST or (http.stage is Stage.HANDLER and bool(http.request_body))


def use_deadline_protocol(app: Sanic[Any, Any], _loop: asyncio.AbstractEventLoop) -> None:
    """`main_process_start` listener: serve with DeadlineHttpProtocol under `sanic ccproxy.app:create_app --factory`
    too (`ccproxy serve` passes it to `app.prepare`). The workers are started with these server settings."""
    for info in app.state.server_info:
        if info.settings.get("protocol") is HttpProtocol:
            info.settings["protocol"] = DeadlineHttpProtocol
