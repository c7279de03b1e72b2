"""A third-party guardrail plugin, proven end to end: built from its source tree (tests/plugins/ccproxy-example-guard),
pip-installed offline into a throwaway virtualenv layered on this one, and serving the proxy started from there: it
refuses requests and masks ticket numbers in answers, streamed ones included."""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.support.anthropic_stream import check_stream
from tests.support.proxy_process import REPO_ROOT, FakeUpstream, ProxyServer, python_env, start_proxy

pytestmark = pytest.mark.e2e

SOURCE = REPO_ROOT / "tests" / "plugins" / "ccproxy-example-guard"
SONNET = "claude-sonnet-5"
CONFIG = '[guardrails.example_guard]\ncodename = "PROJECT-X"\n'


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=300, cwd=cwd, env=python_env()
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv layered on this one (a .pth file adds its site-packages) with the example plugin installed."""
    root = tmp_path_factory.mktemp("example-guard")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    ours = [path for path in site.getsitepackages() if path.startswith(sys.prefix)]
    # `import site; site.addsitedir(...)` rather than a bare path, so the .pth files there (editable installs) count.
    (purelib / "ccproxy_layer.pth").write_text(f"import site; site.addsitedir({ours[0]!r})\n", encoding="utf-8")
    source = root / "src"
    shutil.copytree(SOURCE, source)  # the build writes into its tree: never into the repository
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", source)
    return python


def test_the_plugin_is_installed_in_the_venv_only(venv_python: Path) -> None:
    assert importlib.util.find_spec("ccproxy_example_guard") is None  # not in the suite's own environment
    listing = json.loads(run(venv_python, "-m", "ccproxy", "plugins", "--json"))
    plugin = next(p for p in listing["plugins"] if p["name"] == "example_guard")
    assert (plugin["distribution"], plugin["builtin"]) == ("ccproxy-example-guard", False)
    assert plugin["hooks"] == ["ccproxy_register_guardrails", "ccproxy_register_stream_filters"]


@pytest.fixture(scope="module")
def proxy(venv_python: Path, e2e_logs: Path, fake_upstream: FakeUpstream) -> Iterator[ProxyServer]:
    """The real proxy, started by the venv's interpreter (overrides the conftest's plain proxy for this module)."""
    config = e2e_logs / "example-guard.toml"
    config.write_text(CONFIG, encoding="utf-8")
    server = start_proxy(
        e2e_logs,
        upstream=fake_upstream,
        api_key=fake_upstream.api_key or "",
        big_model="gpt-5",
        small_model="gpt-4o-mini",
        config_path=config,
        name="proxy-example-guard",
        python=venv_python,
    )
    yield server
    server.stop_and_check()
    assert "guardrail 'example_guard' block on the request" in server.process.log_text()


def echo(text: str) -> str:
    return "ECHO_PIECES " + base64.b64encode(text.encode()).decode()


def test_it_refuses_requests_naming_the_code_name(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    with pytest.raises(anthropic.PermissionDeniedError, match="guardrail 'example_guard'"):
        client.messages.create(model=SONNET, max_tokens=50, messages=[{"role": "user", "content": "PROJECT-X plans"}])
    assert fake.chat_requests() == []


def test_it_masks_a_ticket_split_across_streamed_deltas(client: anthropic.Anthropic) -> None:
    prompt = echo("See TICKET-123456 and TICKET-654321 for details.")
    stream = client.messages.create(
        model=SONNET, max_tokens=50, messages=[{"role": "user", "content": prompt}], stream=True
    )
    events = [event.model_dump() for event in stream]
    check_stream(events)
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "See [TICKET] and [TICKET] for details."


def test_it_masks_tickets_in_non_streamed_answers(client: anthropic.Anthropic) -> None:
    prompt = echo("Fixed in TICKET-000042.")
    message = client.messages.create(model=SONNET, max_tokens=50, messages=[{"role": "user", "content": prompt}])
    assert message.content[0].type == "text" and message.content[0].text == "Fixed in [TICKET]."
