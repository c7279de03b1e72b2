"""aiohttp (~9 MB per worker) is imported only when a backend uses `transport = "aiohttp"`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from ccproxy.app import create_app
from ccproxy.settings import Settings
from sanic import Sanic
Sanic.test_mode = True
options = {"openai": json.loads(sys.argv[1])}
create_app(Settings(api_key="sk-test-0123456789", base_url="http://127.0.0.1:9/v1", plugin_options=options))
print("aiohttp" in sys.modules)
"""


def imported_aiohttp(tmp_path: Path, options: str) -> bool:
    """Whether building the app (in a fresh interpreter) imported aiohttp, with these openai plugin options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CCPROXY_"))}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, options],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1] == "True"


def test_the_default_transport_leaves_aiohttp_unimported(tmp_path: Path) -> None:
    assert not imported_aiohttp(tmp_path, "{}")


def test_a_backend_on_aiohttp_imports_it(tmp_path: Path) -> None:
    assert imported_aiohttp(tmp_path, '{"transport": "aiohttp"}')
