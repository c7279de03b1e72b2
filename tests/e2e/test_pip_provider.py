"""A third-party provider installed with pip serves a route without a line of ccproxy changed: the distribution in
tests/plugins/ccproxy-example is pip-installed into a throwaway virtualenv, and the proxy started from that
virtualenv routes to it through its entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.support.proxy_process import (
    REPO_ROOT,
    FakeUpstream,
    ProxyServer,
    python_env,
    serve_until_exit,
    start_configured_proxy,
)

pytestmark = pytest.mark.e2e

EXAMPLE = REPO_ROOT / "tests" / "plugins" / "ccproxy-example"


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=python_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{argv} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv that sees the test environment's packages (ccproxy, pip, setuptools) through a .pth file,
    with ccproxy-example pip-installed into it alone (offline: no index, no build isolation)."""
    root = tmp_path_factory.mktemp("pip-provider")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    python = venv / "bin" / "python"
    site_packages = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root).stdout.strip()
    )
    # `--system-site-packages` would show the base interpreter's packages, not this environment's: a .pth line that
    # adds this environment's site directory (its own .pth files, editable installs included, are processed).
    parent = sysconfig.get_paths()["purelib"]
    (site_packages / "ccproxy-test-parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    source = root / "ccproxy-example"
    shutil.copytree(EXAMPLE, source)  # building writes into the source tree: not into the repository's
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", str(source)], root)
    return python


@pytest.fixture(scope="module")
def example_proxy(e2e_logs: Path, venv_python: Path, fake_upstream: FakeUpstream) -> Iterator[ProxyServer]:
    config = e2e_logs / "pip-provider.toml"
    config.write_text(
        f"""
[backends.ex]
provider = "example"
base_url = "{fake_upstream.base_url}"
api_key = {{"$env" = "EXAMPLE_KEY"}}
tag = "from-plugins-toml"

[routes]
"claude-*" = "ex:gpt-4o-mini"
""",
        encoding="utf-8",
    )
    server = start_configured_proxy(
        e2e_logs,
        config,
        name="proxy-pip-provider",
        python=str(venv_python),
        extra_env={"EXAMPLE_KEY": fake_upstream.api_key},
    )
    yield server
    server.stop_and_check()


def test_the_installed_provider_serves_a_route(example_proxy: ProxyServer, fake: FakeUpstream) -> None:
    with anthropic.Anthropic(base_url=example_proxy.base_url, api_key="x", max_retries=0, timeout=30) as sdk:
        raw = sdk.messages.with_raw_response.create(
            model="claude-sonnet-5", max_tokens=4096, messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.parse().content[0].text == "FAKE_OPENAI_REPLY: gpt-4o-mini"
    assert (raw.headers["x-ccproxy-backend"], raw.headers["x-ccproxy-upstream-model"]) == ("ex", "gpt-4o-mini")
    sent = fake.last_chat()
    assert sent["headers"]["x-example-tag"] == "from-plugins-toml"  # the provider's option, from its table
    assert sent["body"]["max_tokens"] == 1000  # the provider's capabilities clamp the client's 4096


def test_ccproxy_plugins_lists_the_installed_distribution(venv_python: Path, tmp_path: Path) -> None:
    listing = json.loads(run([str(venv_python), "-m", "ccproxy", "plugins", "--json"], tmp_path).stdout)
    found = json.dumps(listing)
    assert "ccproxy-example" in found and "0.3.1" in found and '"example"' in found


def test_without_the_distribution_the_provider_is_unknown(tmp_path: Path) -> None:
    config = tmp_path / "example.toml"
    config.write_text('[backends.ex]\nprovider = "example"\nbase_url = "http://127.0.0.1:9/v1"\n')
    done = serve_until_exit(config, tmp_path)
    assert done.returncode != 0
    assert "backends.ex.provider: 'example' is not installed; installed providers: " in done.stderr
    assert "openai" in done.stderr.partition("installed providers: ")[2]  # with any other provider plugin here
