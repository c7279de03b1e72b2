"""Where the test data comes from: the in-repo captures match the pinned CLI and the scenario list, hold no secret,
and the shared folder, when present (or required), is really used."""

from __future__ import annotations

import json
import tomllib
from typing import Any

from tests.support.fixtures import (
    CLAUDE_CODE,
    REPO_ROOT,
    SHARED_PREFIX,
    claude_code_requests,
    repo_claude_code_requests,
    require_shared_dir,
)

CAPTURE_TOOL = REPO_ROOT / "tools" / "capture_claude_code"


def _index() -> dict[str, Any]:
    index: dict[str, Any] = json.loads((CLAUDE_CODE / "INDEX.json").read_text(encoding="utf-8"))
    return index


def test_the_captures_come_from_the_pinned_cli_and_every_scenario() -> None:
    pinned = (CAPTURE_TOOL / "CLAUDE_CODE_VERSION").read_text(encoding="utf-8").strip()
    scenarios = tomllib.loads((CAPTURE_TOOL / "scenarios.toml").read_text(encoding="utf-8"))["scenario"]
    index = _index()
    assert index["cli_version"].split()[0] == pinned
    assert sorted(index["scenarios"]) == sorted(entry["name"] for entry in scenarios)
    listed = sorted(name for entry in index["scenarios"].values() for name in entry["files"])
    assert listed == sorted(path.name for path in CLAUDE_CODE.glob("*.json") if path.name != "INDEX.json")
    for path in CLAUDE_CODE.glob("*.*.json"):
        capture = json.loads(path.read_text(encoding="utf-8"))
        assert (capture["cli_version"], capture["scenario"]) == (index["cli_version"], path.name.split(".")[0])


def test_the_captures_hold_no_credential_device_id_or_local_path() -> None:
    for capture in repo_claude_code_requests():
        headers = capture.headers()
        for name in ("x-api-key", "authorization"):
            assert headers.get(name, "***MASKED***").endswith("***MASKED***"), (capture.id, name)
        if capture.method == "POST" and capture.path == "/v1/messages":
            user_id = json.loads(capture.body["metadata"]["user_id"])
            assert user_id["device_id"] == "MASKED", capture.id
    # The throwaway HOME (`.../ccapture-*/dev`) became /home/dev everywhere, also in ~/.claude/projects/<dashed>.
    text = "\n".join(path.read_text(encoding="utf-8") for path in CLAUDE_CODE.glob("*.json"))
    assert "ccapture-" not in text and str(REPO_ROOT) not in text
    assert "/home/dev/project" in text


def test_the_shared_captures_are_used_when_present() -> None:
    shared = require_shared_dir("claude-code")
    expected = sorted(SHARED_PREFIX + path.stem for path in shared.glob("*.json") if path.name != "INDEX.json")
    assert sorted(c.id for c in claude_code_requests() if c.id.startswith(SHARED_PREFIX)) == expected
