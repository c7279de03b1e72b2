"""Where the test data lives: the repository's own fixtures, plus ../shared/fixtures as extra coverage when present.

tests/fixtures/claude-code holds what the Claude Code CLI sent (made by tools/capture_claude_code), and
tests/fixtures/upstream the upstream answers per wire family (made by tools/make_upstream_fixtures.py). Every rule
the suite checks is covered by these alone, so a plain clone runs. The shared folder beside the checkout adds more
real recordings; CI sets CCPROXY_REQUIRE_SHARED_FIXTURES=1 so that its absence fails there instead of shrinking
the suite unnoticed.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
CLAUDE_CODE = FIXTURES / "claude-code"
UPSTREAM = FIXTURES / "upstream"
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
REQUIRE_SHARED = "CCPROXY_REQUIRE_SHARED_FIXTURES"
# Test ids of cases from the shared folder start with this, so a failure says where its data came from.
SHARED_PREFIX = "shared:"

T = TypeVar("T")


def shared_required() -> bool:
    return bool(os.environ.get(REQUIRE_SHARED))


def shared_dir(name: str) -> Path | None:
    """../shared/fixtures/<name> when it is there and not empty."""
    path = SHARED_FIXTURES / name
    return path if path.is_dir() and any(path.iterdir()) else None


def require_shared_dir(name: str) -> Path:
    """For a test that only the shared data can feed: skips without it, fails without it when CI requires it."""
    path = shared_dir(name)
    if path is not None:
        return path
    message = f"{SHARED_FIXTURES / name} is not there"
    if shared_required():
        pytest.fail(f"{message} and {REQUIRE_SHARED} is set")
    pytest.skip(f"{message}: extra coverage only (the in-repo fixtures cover every rule)")


def nonempty(cases: Sequence[T], where: Path) -> Sequence[T]:
    """The cases to parametrise over; none at all fails the test module's collection instead of skipping its tests
    silently (pyproject's `empty_parameter_set_mark` catches the lists that do not pass through here)."""
    if not cases:
        raise FileNotFoundError(f"no fixtures in {where}: a test parametrised over nothing would pass vacuously")
    return cases


@dataclass(frozen=True)
class ClaudeCodeRequest:
    """One request the CLI sent, as a capture file records it."""

    id: str
    request: dict[str, Any]

    @property
    def method(self) -> str:
        return str(self.request["method"])

    @property
    def path(self) -> str:
        return str(self.request["path"])

    @property
    def body(self) -> Any:
        return self.request["body"]

    def headers(self) -> dict[str, str]:
        """Header names in lower case (captures keep the case they arrived in)."""
        return {name.lower(): value for name, value in self.request["headers"].items()}


def _captures_in(folder: Path, prefix: str) -> list[ClaudeCodeRequest]:
    found = []
    for path in sorted(folder.glob("*.json")):
        if path.name != "INDEX.json":
            request = json.loads(path.read_text(encoding="utf-8"))["request"]
            found.append(ClaudeCodeRequest(prefix + path.stem, request))
    return found


@functools.cache
def repo_claude_code_requests() -> tuple[ClaudeCodeRequest, ...]:
    return tuple(_captures_in(CLAUDE_CODE, ""))


@functools.cache
def claude_code_requests() -> tuple[ClaudeCodeRequest, ...]:
    """Every captured request: the repository's, then the shared folder's (ids prefixed `shared:`)."""
    shared = shared_dir("claude-code")
    extra = _captures_in(shared, SHARED_PREFIX) if shared is not None else []
    return (*nonempty(repo_claude_code_requests(), CLAUDE_CODE), *extra)


def claude_code_posts(path: str) -> list[ClaudeCodeRequest]:
    """Captured POSTs to one endpoint (the CLI's `HEAD /` probe has no body)."""
    found = [capture for capture in claude_code_requests() if capture.method == "POST" and capture.path == path]
    return list(nonempty(found, CLAUDE_CODE))
