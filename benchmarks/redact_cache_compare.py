"""What a ccproxy-guardrails rule's scan cache saves on Claude Code's requests (the history resent every turn).

The default `[guardrails.redact]` rule (and a block rule with one pattern) checks the 78 KB capture
(tool_bash_all_tools.01) through `on_request`, the exact code path the proxy runs, on bodies freshly parsed from the
raw bytes before every call (new string objects, as in the proxy). Variants, in interleaved rounds so a busy
machine slows each alike (CPU time, `time.process_time`):

- no cache: the rule's cache stores nothing (every text scanned, as before the cache);
- first call: a fresh rule, so every text is scanned and stored;
- next turn: the rule has seen the previous turn (tool_bash_all_tools.00), so only the new messages are scanned;
- same body again: every text was seen.

    .venv/bin/python benchmarks/redact_cache_compare.py [--rounds 15] [--calls 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench_payloads import REPO_ROOT

from ccproxy import GuardrailContext
from ccproxy.core.jsoncodec import loads
from ccproxy_guardrails.config import parse_rules
from ccproxy_guardrails.rules import BlockRule, RedactRule, Rule, guardrail_for

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "claude-code"
CONTEXT = GuardrailContext(request_id="req_bench", headers={})
OPTIONS: dict[str, dict[str, Any]] = {
    "redact (default detectors)": {"redact": {}},
    "block (one pattern)": {"block": {"patterns": ["(?i)project\\s+falcon"]}},
}


def raw_body(name: str) -> bytes:
    return json.dumps(json.loads((FIXTURES / name).read_text(encoding="utf-8"))["request"]["body"]).encode()


PREVIOUS, CURRENT = raw_body("tool_bash_all_tools.00.json"), raw_body("tool_bash_all_tools.01.json")


def make_rule(options: dict[str, Any], cached: bool) -> Rule:
    [config] = parse_rules(options)
    rule = guardrail_for(config, lambda event: None)
    assert isinstance(rule, RedactRule | BlockRule)
    if not cached:
        rule.scans.max_bytes = 0  # nothing is stored: every text is scanned, as before the cache
    return rule


def timed(setup: Callable[[], Rule], calls: int) -> float:
    """Mean CPU µs of one `on_request` of a freshly parsed CURRENT body on the rule `setup()` returns."""
    total = 0.0
    for _ in range(calls):
        rule = setup()
        body = loads(CURRENT)
        start = time.process_time()
        rule.on_request(body, CONTEXT)
        total += time.process_time() - start
    return total / calls * 1e6


def variants(options: dict[str, Any]) -> dict[str, Callable[[], Rule]]:
    uncached = make_rule(options, cached=False)
    seen_same = make_rule(options, cached=True)
    seen_same.on_request(loads(CURRENT), CONTEXT)

    def next_turn() -> Rule:  # a rule that has checked the previous turn only
        rule = make_rule(options, cached=True)
        rule.on_request(loads(PREVIOUS), CONTEXT)
        return rule

    return {
        "no cache": lambda: uncached,
        "first call": lambda: make_rule(options, cached=True),
        "next turn": next_turn,
        "same body again": lambda: seen_same,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    for title, options in OPTIONS.items():
        table = variants(options)
        results: dict[str, list[float]] = {name: [] for name in table}
        for _ in range(args.rounds):
            for name, setup in table.items():
                results[name].append(timed(setup, args.calls))
        base = statistics.median(results["no cache"])
        print(f"\n{title}: on_request of the 78 KB capture, CPU µs per call ({args.rounds} rounds x {args.calls})")
        print(f"{'variant':<18} {'median':>9} {'best':>9} {'/ no cache':>11}")
        for name, values in results.items():
            median = statistics.median(values)
            print(f"{name:<18} {median:9.1f} {min(values):9.1f} {median / base:11.3f}")


if __name__ == "__main__":
    main()
