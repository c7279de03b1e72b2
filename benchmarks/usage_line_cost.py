"""What the JSON usage line costs per request, by how many requests one batch of the deferred observers holds.

The usage observer's `request_done` (the totals) for each record of a batch, then its `batch_done` (the batch's
lines as one block; ccproxy/observers.py delivers the batches) runs with the handlers the server configures for
`LOG_FORMAT=json` with `LOG_FILE_PATH` and `ERROR_LOG_FILE_PATH` (stderr goes to a scratch file), on uvloop;
each batch is one event-loop turn, ending with `asyncio.sleep(0)`; the batched lines are written when the
handlers' delay or size says so, and what waits at the end is written inside the measurement. LOG_LEVEL=INFO
(with the line) and WARNING (without) alternate in interleaved rounds; the difference is the line. CPU time
(`time.process_time`).

    .venv/bin/python benchmarks/usage_line_cost.py [--rounds 9] [--requests 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from ccproxy.default_plugins.usage import UsageObserver
from ccproxy.events import RequestRecord
from ccproxy.logs import configure_logging, flush_logs
from ccproxy.redaction import Redactor
from ccproxy.settings import Settings
from ccproxy.usage import UsageTotals

PER_TURN = (1, 8, 64)  # records per batch


def record() -> RequestRecord:
    made = RequestRecord(request_id="req_0123456789abcdef", key_id="key_01234567", endpoint="messages")
    made.client_model, made.backend, made.upstream_model, made.status = "claude-sonnet-4-5", "default", "gpt-5", 200
    made.input_tokens, made.output_tokens, made.total_ms = 12, 9, 3.2
    return made


async def per_request(observer: UsageObserver, per_turn: int, total: int) -> float:
    """CPU µs per request of `total` requests finishing `per_turn` to a loop turn."""
    records = [record() for _ in range(total)]
    start = time.process_time()
    for first in range(0, total, per_turn):
        for made in records[first : first + per_turn]:
            observer.request_done(made)
        observer.batch_done()
        await asyncio.sleep(0)  # the end of the turn
    flush_logs()  # what the handlers' batches still hold is written inside the measurement
    return (time.process_time() - start) / total * 1e6


async def compare(rounds: int, total: int) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="usage-line-"))
    stdout = sys.stdout
    sys.stderr = (scratch / "stderr.txt").open("w")  # the handlers keep writing to it until exit
    settings = Settings(
        log_level="INFO",
        log_format="json",
        log_file_path=str(scratch / "log.jsonl"),
        error_log_file_path=str(scratch / "error.jsonl"),
    )
    configure_logging(settings, Redactor(["sk-upstream-secret-0123456789"]))
    observer = UsageObserver(UsageTotals())
    root = logging.getLogger("ccproxy")
    results: dict[tuple[int, str], list[float]] = {(n, level): [] for n in PER_TURN for level in ("INFO", "WARNING")}
    for _ in range(rounds):
        for (per_turn, level), values in results.items():
            root.setLevel(level)
            values.append(await per_request(observer, per_turn, total))
    for per_turn in PER_TURN:
        info, warning = (statistics.median(results[per_turn, level]) for level in ("INFO", "WARNING"))
        print(
            f"{per_turn:3d} requests per batch: INFO {info:6.2f} µs, WARNING {warning:6.2f} µs,"
            f" the line {info - warning:6.2f} µs",
            file=stdout,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=4096)
    args = parser.parse_args()
    uvloop.run(compare(args.rounds, args.requests))


if __name__ == "__main__":
    main()
