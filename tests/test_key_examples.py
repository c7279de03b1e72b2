"""The client keys the docs and docker-compose.yml show are keys ccproxy accepts: an example copied as written
must not stop the server at start-up (keys need 16+ printable characters, ccproxy/config.py MIN_CLIENT_KEY_CHARS)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ccproxy.keys import KeyTable
from ccproxy.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FILES = sorted(
    [ROOT / "README.md", ROOT / "docker-compose.yml", *(ROOT / "docs").glob("*.md")],
    key=lambda path: path.name,
)
# `CCPROXY_API_KEYS=a,b` / `CCPROXY_ADMIN_KEY=k` as a shell line shows them; `$VAR` values are not examples.
SETTING = re.compile(r"\b(CCPROXY_API_KEYS|CCPROXY_ADMIN_KEY)=([^\s\"'$]\S*)")
CLIENT_KEY = re.compile(r"\bANTHROPIC_API_KEY=([^\s\"'$]\S*)")
NEARBY_LINES = 4


def examples() -> list[tuple[str, str, str]]:
    """(file, setting, value) for every key setting shown with a literal value."""
    found = []
    for path in EXAMPLE_FILES:
        for match in SETTING.finditer(path.read_text(encoding="utf-8")):
            found.append((str(path.relative_to(ROOT)), match.group(1), match.group(2)))
    return found


def load(environ: dict[str, str], tmp_path: Path) -> KeyTable:
    base = {"OPENAI_API_KEY": "sk-upstream", "CCPROXY_ENV_FILE": str(tmp_path / "none.env")}
    return KeyTable.from_settings(load_settings({**base, **environ}, config_path=None))


def test_the_examples_are_found() -> None:
    files = {file for file, _, _ in examples()}
    assert {"docker-compose.yml", "README.md"} <= files, files


@pytest.mark.parametrize(("file", "setting", "value"), examples(), ids=lambda item: str(item)[:40])
def test_every_key_example_is_accepted(file: str, setting: str, value: str, tmp_path: Path) -> None:
    table = load({setting: value}, tmp_path)
    if setting == "CCPROXY_API_KEYS":
        assert all(table.client(key) is not None for key in value.split(","))
    else:
        assert table.is_admin(value)


def client_lines() -> list[tuple[str, str, set[str]]]:
    """(file, the key a client is shown sending, the keys configured just above it): an ANTHROPIC_API_KEY within
    NEARBY_LINES lines after a CCPROXY_API_KEYS line belongs to that example."""
    pairs = []
    for path in EXAMPLE_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            for setting in SETTING.finditer(line):
                configured = set(setting.group(2).split(","))
                for later in lines[number : number + NEARBY_LINES]:
                    pairs += [(path.name, client.group(1), configured) for client in CLIENT_KEY.finditer(later)]
    return pairs


def test_the_key_a_client_is_shown_sending_is_one_the_example_configures() -> None:
    pairs = client_lines()
    assert {file for file, _, _ in pairs} >= {"docker-compose.yml", "containers.md"}
    for file, key, configured in pairs:
        assert key in configured, f"{file}: a client sends {key!r}, the example configures {sorted(configured)}"


def test_a_short_key_is_refused_so_the_check_above_can_fail(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CCPROXY_API_KEYS: a key needs at least 16"):
        load({"CCPROXY_API_KEYS": "team-key-1"}, tmp_path)
