"""The container files agree with each other: Dockerfile targets, docker-compose.yml and the HAProxy configuration.

containers/build-image.sh builds and runs the image for real (it needs root, buildah and podman; docs/containers.md
has its output); these tests keep the files in step where a container runtime is not at hand.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_TARGETS = ("slim", "alpine")
COMPILERS = re.compile(r"\b(gcc|build-base|clang|libc6-dev|musl-dev|python3-dev)\b")


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = stages.setdefault(match.group(1), [])
        current.append(line)
    return stages


def compose() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return parsed


def ccproxy_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose()["services"].items() if svc.get("build", {}).get("context") == "."}


@pytest.mark.parametrize("target", RUNTIME_TARGETS)
def test_runtime_targets_run_unprivileged_with_a_health_check_and_no_compiler(target: str) -> None:
    instructions = dockerfile_stages()[target]
    joined = "\n".join(instructions)
    assert not COMPILERS.search(joined), f"the {target} runtime stage installs a compiler"
    assert re.search(r"^USER ccproxy$", joined, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*CMD .*urlopen\('http://127\.0\.0\.1:%s/'", joined, re.MULTILINE)
    assert f"from={target}-build,source=/wheels" in joined  # installs the wheels of its own build stage
    assert re.search(r"^ENV .*\bHOST=0\.0\.0\.0\b", joined, re.MULTILINE)


def test_slim_is_the_default_target() -> None:
    assert list(dockerfile_stages())[-1] == "slim"


def test_compose_runs_two_instances_sharing_redis() -> None:
    services = ccproxy_services()
    assert len(services) >= 2
    for name, service in services.items():
        environment = service["environment"]
        assert environment["CCPROXY_CACHE"] == "redis", name
        assert environment["REDIS_URL"] == "redis://redis:6379/0", name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["build"]["target"] in RUNTIME_TARGETS
        # Started without client keys on 0.0.0.0, ccproxy would refuse: compose asks for them instead.
        assert environment["CCPROXY_API_KEYS"].startswith("${CCPROXY_API_KEYS:?"), name
    redis = compose()["services"]["redis"]
    assert "healthcheck" in redis
    # Redis builds other than the official image refuse clients from other containers in protected mode.
    command = " ".join(redis["command"])
    assert "--protected-mode no" in command, command


def test_the_load_balancer_sends_to_every_instance_once_each_is_healthy() -> None:
    balancer = compose()["services"]["lb"]
    assert balancer["depends_on"] == {name: {"condition": "service_healthy"} for name in ccproxy_services()}
    config = (ROOT / "containers" / "haproxy.cfg").read_text()
    servers = dict(re.findall(r"^\s*server\s+(\S+)\s+(\S+)", config, re.MULTILINE))
    port = re.search(r"\bPORT=(\d+)", "\n".join(dockerfile_stages()["slim"]))
    assert port is not None
    assert servers == {name: f"{name}:{port.group(1)}" for name in ccproxy_services()}
    frontend = re.search(r"^\s*bind\s+:(\d+)", config, re.MULTILINE)
    assert frontend is not None
    assert any(str(mapping).endswith(f":{frontend.group(1)}") for mapping in balancer["ports"])
    assert "http-check send meth GET uri / " in config
    # A stopped instance: the failed connect is retried on another one instead of answering 503.
    assert re.search(r"^\s*option redispatch\b", config, re.MULTILINE)


def test_the_build_context_holds_what_the_wheels_need_and_no_secrets() -> None:
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*"  # an allow-list
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    build_script = (ROOT / "containers" / "build-wheels.sh").read_text()
    scripts = set(re.findall(r"\b((?:containers|tools)/[\w.-]+)", build_script))
    assert {"pyproject.toml", "setup.py", "sanic_config.py", "README.md", "ccproxy", "plugins"} <= allowed
    assert scripts <= allowed
    assert {"**/.env", "**/*.so"} <= set(rules)
