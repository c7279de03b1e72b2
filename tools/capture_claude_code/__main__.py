"""Capture every request the real Claude Code CLI sends, into tests/fixtures/claude-code.

    .venv/bin/python -m tools.capture_claude_code [--only NAME ...] [--cli PATH] [--out DIR]

Installs the CLI version pinned in CLAUDE_CODE_VERSION (through tests/support/install_claude_cli.sh), serves the
fake Anthropic API of fake_anthropic.py on a free loopback port, runs each scenario of scenarios.toml against it
with a throwaway HOME and no network beyond the fake, and writes each request the fake received as
`<scenario>.<NN>.json` (`{scenario, cli_version, argv, env, request: {method, path, query, headers, body}}`), plus
INDEX.json (per scenario: exit code, result, every request and the files written). Credentials and the per-install
device id are masked and the throwaway paths become /home/dev (scrub.py). A request identical to one already written
in the same run (the CLI's opening `HEAD /`, repeated count_tokens bodies) is listed in INDEX.json, not written again.
Exits 1 when a scenario did not end as scenarios.toml expects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .fake_anthropic import FakeAnthropic, RecordedRequest
from .runner import OFFLINE_ENV, RunResult, Sandbox, Scenario, environment, run_interactive, run_print_mode
from .scrub import Scrubber

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
VERSION_FILE = HERE / "CLAUDE_CODE_VERSION"
SCENARIOS_FILE = HERE / "scenarios.toml"
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "claude-code"
INSTALL_SCRIPT = REPO_ROOT / "tests" / "support" / "install_claude_cli.sh"
STABLE_HOME = "/home/dev"
RUN_TIMEOUT = 180.0
# Recorded environment: what configures the CLI, not what locates programs on this machine.
RECORDED_ENV = frozenset(OFFLINE_ENV) | {"HOME", "ANTHROPIC_BASE_URL"}


def pinned_version() -> str:
    return VERSION_FILE.read_text(encoding="utf-8").strip()


def load_scenarios(only: list[str]) -> list[Scenario]:
    entries = tomllib.loads(SCENARIOS_FILE.read_text(encoding="utf-8"))["scenario"]
    scenarios = [Scenario.from_toml(entry) for entry in entries]
    unknown = set(only) - {s.name for s in scenarios}
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return [s for s in scenarios if not only or s.name in only]


def install_cli() -> Path:
    done = subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, capture_output=True, text=True)
    return Path(done.stdout.strip().splitlines()[-1])


def cli_version(cli: Path) -> str:
    return subprocess.run([str(cli), "--version"], check=True, capture_output=True, text=True).stdout.strip()


def dashed(path: str) -> str:
    """How the CLI names a project's folder under ~/.claude/projects (every non-alphanumeric becomes `-`)."""
    return re.sub(r"[^A-Za-z0-9]", "-", path)


@dataclass
class Capture:
    """Writes the requests of one capture run; remembers what it wrote to leave out exact repeats."""

    out: Path
    version: str
    written: dict[str, str] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)

    def scenario(self, scenario: Scenario, run: RunResult, requests: list[RecordedRequest], scrub: Scrubber) -> None:
        env = {name: scrub.text(value) for name, value in sorted(run_env(scenario).items())}
        files: list[str] = []
        repeats: dict[str, str] = {}
        summaries: list[str] = []
        for number, request in enumerate(requests):
            name = f"{scenario.name}.{number:02d}.json"
            recorded = {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "headers": scrub.headers(request.headers),
                "body": scrub.body(request.body),
            }
            summaries.append(_summary(recorded))
            key = json.dumps([recorded[k] for k in ("method", "path", "query", "body")], sort_keys=True)
            if key in self.written:
                repeats[name] = self.written[key]
                continue
            self.written[key] = name
            document = {
                "scenario": scenario.name,
                "cli_version": self.version,
                "argv": scenario.argv(),
                "env": env,
                "request": recorded,
            }
            _write_json(self.out / name, document)
            files.append(name)
        self.index[scenario.name] = {
            "argv": scenario.argv(),
            "env": scenario.env,
            "unset": scenario.unset,
            "rc": run.returncode,
            "result": scrub.text(run.result),
            "stderr_tail": scrub.text(run.stderr_tail),
            "requests": summaries,
            "files": files,
            "repeats": repeats,
        }


def run_env(scenario: Scenario) -> dict[str, str]:
    """The recorded part of the scenario's environment (placeholders for the per-run values)."""
    sandbox = Sandbox(Path(STABLE_HOME))
    env = environment(scenario, sandbox, "http://127.0.0.1:PORT")
    return {name: value for name, value in env.items() if name in RECORDED_ENV or name in scenario.env}


def _summary(request: dict[str, Any]) -> str:
    query = "&".join(f"{k}={v}" for k, v in request["query"].items())
    body = request["body"]
    model = body.get("model") if isinstance(body, dict) else None
    return f"{request['method']} {request['path']}{'?' + query if query else ''} model={model}"


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _check_scrubbed(out: Path, marker: str) -> None:
    leaks = [path.name for path in out.glob("*.json") if marker in path.read_text(encoding="utf-8")]
    if leaks:
        raise SystemExit(f"the throwaway path {marker!r} is still in {leaks}: extend scrub.py")


async def capture(cli: Path, scenarios: list[Scenario], out: Path, timeout: float) -> tuple[Capture, list[str]]:
    """Runs every scenario against the fake; returns what was written and the scenarios that did not end as
    scenarios.toml expects."""
    fake = FakeAnthropic()
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    writer = Capture(out, cli_version(cli))
    try:
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        results = [await _run_scenario(cli, scenario, fake, writer, base_url, timeout) for scenario in scenarios]
    finally:
        await runner.cleanup()
    return writer, [scenario.name for scenario, ok in zip(scenarios, results, strict=True) if not ok]


async def _run_scenario(
    cli: Path, scenario: Scenario, fake: FakeAnthropic, writer: Capture, base_url: str, timeout: float
) -> bool:
    with tempfile.TemporaryDirectory(prefix="ccapture-") as root:
        sandbox = Sandbox.create(Path(root))
        fake.reset(str(sandbox.project))
        env = environment(scenario, sandbox, base_url)
        run = run_interactive if scenario.interactive else run_print_mode
        result = await run(cli, scenario, sandbox, env, timeout)
        requests = fake.reset(str(sandbox.project))
        home = str(sandbox.home)
        writer.scenario(
            scenario, result, requests, Scrubber([(home, STABLE_HOME), (dashed(home), dashed(STABLE_HOME))])
        )
        _check_scrubbed(writer.out, Path(root).name)
    ok = result.returncode == scenario.expect_rc and scenario.expect in result.result
    print(f"{'ok  ' if ok else 'FAIL'} {scenario.name}: rc={result.returncode} requests={len(requests)}")
    if not ok:
        print(f"     result: {result.result[:300]!r}\n     stderr: {result.stderr_tail[-300:]!r}")
    return ok


def _write_index(out: Path, writer: Capture, *, keep_others: bool) -> None:
    """INDEX.json; with `keep_others` (an --only run) the entries of scenarios not rerun stay."""
    path = out / "INDEX.json"
    previous = json.loads(path.read_text(encoding="utf-8")) if keep_others and path.exists() else {}
    scenarios = previous.get("scenarios", {}) if previous.get("cli_version") == writer.version else {}
    scenarios.update(writer.index)
    index = {
        "cli_version": writer.version,
        "command": "python -m tools.capture_claude_code",
        "scenarios": scenarios,
    }
    _write_json(path, index)


def _clear(out: Path, scenarios: list[Scenario], everything: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    names = {s.name for s in scenarios}
    for path in out.glob("*.json"):
        if path.name != "INDEX.json" and (everything or path.name.split(".")[0] in names):
            path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.capture_claude_code", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="capture only these scenarios")
    parser.add_argument("--cli", type=Path, help="this CLI binary instead of the pinned one from npm")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument("--timeout", type=float, default=RUN_TIMEOUT, help="seconds per scenario")
    args = parser.parse_args(argv)
    scenarios = load_scenarios(args.only)
    cli = args.cli or install_cli()
    version = cli_version(cli)
    if not args.cli and not version.startswith(pinned_version() + " "):
        raise SystemExit(f"{cli} is {version!r}, not the pinned {pinned_version()}")
    _clear(args.out, scenarios, everything=not args.only)
    writer, failed = asyncio.run(capture(cli, scenarios, args.out, args.timeout))
    _write_index(args.out, writer, keep_others=bool(args.only))
    print(f"{len(scenarios) - len(failed)}/{len(scenarios)} scenarios as expected; written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
