"""A multi-worker proxy stopped with SIGTERM right after serving exits 0 with no traceback, every time.

Sanic's worker manager stops workers inside its signal handler and could die with an UnpicklingError (exit 1) when the
signal landed while its monitor loop read the shared worker state: 11 of 25 such stops failed before
ccproxy/shutdown.py. A few cycles make a regression very likely to show (each cycle failed with p ~ 0.45).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic

from tests.support.proxy_process import FakeUpstream, start_proxy

CYCLES = 4
REQUESTS = 8


def test_two_workers_stop_cleanly_right_after_serving(e2e_logs: Path, fake: FakeUpstream) -> None:
    for cycle in range(CYCLES):
        server = start_proxy(
            e2e_logs,
            upstream=fake,
            api_key=fake.api_key or "",
            big_model="gpt-5",
            small_model="gpt-4o-mini",
            name=f"proxy-shutdown-{cycle}",
            workers=2,
        )
        with (
            anthropic.Anthropic(base_url=server.base_url, api_key="dummy", max_retries=0, timeout=30) as sdk,
            ThreadPoolExecutor(REQUESTS) as pool,
        ):
            replies = list(
                pool.map(
                    lambda i: sdk.messages.create(
                        model="claude-sonnet-5", max_tokens=16, messages=[{"role": "user", "content": f"hi {i}"}]
                    ),
                    range(REQUESTS),
                )
            )
        assert len(replies) == REQUESTS
        server.stop_and_check()  # exit code 0 and no traceback in the log
