"""`ccproxy serve` as a process: a warning per ignored setting at start-up, one line for any invalid or unsafe one."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from ccproxy.settings import UNSUPPORTED_SETTINGS
from tests.support.proxy_process import free_port, http_json, python_env, spawn, wait_until
from tests.test_cli import assert_one_line_error, run_ccproxy

PASSWORD = "s3cr3t/p@ss"
CREDENTIALS_URL = f"https://user:{quote(PASSWORD, safe='')}@upstream.example/v1"


def test_ignored_settings_are_warned_about_once_each_at_start_up(tmp_path: Path) -> None:
    dotenv = tmp_path / "proxy.env"
    dotenv.write_text("CACHE_WARMUP_PRELOAD_COMMON=true\nTHREAD_POOL_AUTO_SCALE=true\nCCPROXY_ENABLE_CYTHON=true\n")
    port = free_port()
    env = python_env(
        {
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # a local upstream needs no key; it is never contacted
            "PORT": str(port),
            "CCPROXY_ENV_FILE": str(dotenv),
            "LOG_PRETTY_CONSOLE": "true",
            "HTTP_CONNECT_TIMEOUT": "5",
            "LOG_FORMAT": "text",
        }
    )
    process = spawn(
        "proxy-ignored-settings", [sys.executable, "-m", "ccproxy", "serve"], tmp_path / "log", env, tmp_path
    )
    try:
        wait_until(process, lambda: _healthy(port), "answer GET /")
        wait_until(process, lambda: "THREAD_POOL_AUTO_SCALE" in process.log_text(), "log its warnings", timeout=5)
    finally:
        process.stop()
    log = process.log_text()
    warnings = re.findall(r"^.* WARNING ccproxy: (\S+) is set but not honoured: (.+)$", log, re.MULTILINE)
    expected = ["LOG_PRETTY_CONSOLE", "CACHE_WARMUP_PRELOAD_COMMON", "HTTP_CONNECT_TIMEOUT", "THREAD_POOL_AUTO_SCALE"]
    assert [name for name, _ in warnings] == [*expected, "CCPROXY_ENABLE_CYTHON"], log
    for name, hint in warnings[:-1]:
        assert hint == UNSUPPORTED_SETTINGS[name]
    assert "use CONNECT_TIMEOUT instead" in log
    assert "export it instead" in warnings[-1][1]


def _healthy(port: int) -> bool:
    try:
        return bool(http_json(f"http://127.0.0.1:{port}/", timeout=1.0)["status"] == "ok")
    except (OSError, ValueError):
        return False


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REQUEST_TIMEOUT": "nan"}, "REQUEST_TIMEOUT"),
        ({"HOST": "not a host"}, "HOST"),
        ({"ALLOWED_ORIGINS": "*"}, "ALLOWED_ORIGINS"),
        ({"CCPROXY_ENABLE_CYTHON": "maybe"}, "CCPROXY_ENABLE_CYTHON"),
    ],
)
def test_invalid_values_stop_start_up_with_one_line(tmp_path: Path, env: dict[str, str], named: str) -> None:
    assert_one_line_error(run_ccproxy(tmp_path, {"OPENAI_API_KEY": "sk-x", **env}), named)


def test_credentials_in_the_url_and_a_key_stop_start_up_without_printing_them(tmp_path: Path) -> None:
    result = run_ccproxy(tmp_path, {"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": CREDENTIALS_URL})
    assert_one_line_error(result, "OPENAI_BASE_URL")
    assert "keep only one" in result.stderr
    assert PASSWORD not in result.stderr and quote(PASSWORD, safe="") not in result.stderr


def test_an_invalid_url_with_credentials_is_named_without_them(tmp_path: Path) -> None:
    result = run_ccproxy(tmp_path, {"OPENAI_BASE_URL": CREDENTIALS_URL.replace("/v1", ":port/v1")})
    assert_one_line_error(result, "OPENAI_BASE_URL")
    assert quote(PASSWORD, safe="") not in result.stderr
