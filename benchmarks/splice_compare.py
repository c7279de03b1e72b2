"""Where the prepare path of the 78 KB Claude Code request spends its time, with and without splicing (splice.py).

Each step runs on freshly parsed bodies (as in the proxy, where CPython has not yet cached any string's UTF-8 form),
both cores, in interleaved rounds, so a busy machine slows every variant alike; medians and best of the rounds are
reported, and the ratios of the whole prepare path spliced / fresh.

    .venv/bin/python benchmarks/splice_compare.py [--rounds 21] [--calls 100]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench_payloads import claude_code_request, dumps, request_plan

from ccproxy.core._twins import Core, load_core
from ccproxy.core.jsoncodec import dumps as codec_dumps
from ccproxy.core.jsoncodec import loads
from ccproxy.splice import SplicedPieces

RAW = dumps(claude_code_request()).encode()
Step = Callable[[dict[str, Any]], Any]


def unchanged(body: dict[str, Any], anthropic_request: Any) -> dict[str, Any]:
    return body


def steps(core: Core) -> dict[str, Step | None]:
    """What each variant does with a parsed body; None: parse only (the body is parsed for every call anyway)."""
    pieces = SplicedPieces(core_request=core.request)
    assert pieces.body(RAW, loads(RAW), request_plan(stream=False), unchanged)  # warm: the first call converts

    def validate(body: dict[str, Any]) -> None:
        core.validate.validate_messages_request(body)

    def convert(body: dict[str, Any]) -> Any:
        return core.request.convert_request(body, request_plan(stream=False))

    def fresh(body: dict[str, Any]) -> bytes:
        return codec_dumps(core.request.convert_request(body, request_plan(stream=False)))

    def spliced(body: dict[str, Any]) -> bytes | None:
        return pieces.body(RAW, body, request_plan(stream=False), unchanged)

    def tools_lookup(body: dict[str, Any]) -> Any:
        return pieces.tools(RAW, body["tools"], request_plan(stream=False))

    def system_lookup(body: dict[str, Any]) -> Any:
        return pieces.system(body["system"], request_plan(stream=False).capabilities)

    return {
        "loads": None,
        "validate": validate,
        "convert_request": convert,
        "convert + dumps (fresh)": fresh,
        "spliced body": spliced,
        "  of which tools lookup": tools_lookup,
        "  of which system lookup": system_lookup,
    }


def timed(step: Step | None, calls: int) -> float:
    """µs per call of parsing the body and running `step` on it."""
    start = time.perf_counter()
    for _ in range(calls):
        body = loads(RAW)
        if step is not None:
            step(body)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    variants = {(flavour, name): step for flavour in ("py", "c") for name, step in steps(load_core(flavour)).items()}
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in variants}
    for _ in range(args.rounds):
        for key, step in variants.items():
            samples[key].append(timed(step, args.calls))
    print(f"{len(RAW):,} bytes; µs per call, {args.rounds} interleaved rounds of {args.calls} calls")
    print("| step (after loads, which every row includes) | core | median | best | median minus loads |")
    print("| --- | --- | ---: | ---: | ---: |")
    for (flavour, name), values in samples.items():
        median = statistics.median(values)
        parse = statistics.median(samples[(flavour, "loads")])
        extra = "" if name == "loads" else f"{median - parse:.1f}"
        print(f"| {name} | {flavour} | {median:.1f} | {min(values):.1f} | {extra} |")
    for flavour in ("py", "c"):
        validate = samples[(flavour, "validate")]
        fresh = [a + b for a, b in zip(validate, samples[(flavour, "convert + dumps (fresh)")], strict=True)]
        spliced = [a + b for a, b in zip(validate, samples[(flavour, "spliced body")], strict=True)]
        parse = statistics.median(samples[(flavour, "loads")])
        before, after = statistics.median(fresh) - parse, statistics.median(spliced) - parse
        print(
            f"[{flavour}] prepare (loads + validate + convert + dumps): {before:.0f} -> {after:.0f} µs "
            f"(x{after / before:.2f}); convert + dumps alone: "
            f"{statistics.median(samples[(flavour, 'convert + dumps (fresh)')]) - parse:.0f} -> "
            f"{statistics.median(samples[(flavour, 'spliced body')]) - parse:.0f} µs"
        )


if __name__ == "__main__":
    main()
