"""`ccproxy serve` (load settings, check the port, start Sanic), `ccproxy plugins`, and the launcher's `ccproxy code`
and `ccproxy status` (ccproxy/launcher.py); start-up problems are one line, not a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from typing import Any

from sanic import Sanic
from sanic.worker.loader import AppLoader

from ccproxy import __version__
from ccproxy.config import BackendConfig
from ccproxy.core import CompiledCoreError
from ccproxy.http.protocol import DeadlineHttpProtocol
from ccproxy.settings import Settings, SettingsError, load_settings

EXIT_CONFIG_ERROR = 2
OLLAMA_PORT = 11434
LISTING_KEY = "unused-by-ccproxy-plugins"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccproxy", description="Anthropic Messages API -> OpenAI-compatible proxy")
    parser.add_argument("--version", action="version", version=f"ccproxy {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the proxy (the default command)")
    serve.add_argument("--host", help="interface to listen on (HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (PORT, default 11434)")
    serve.add_argument("--workers", type=int, help="Sanic worker processes (WEB_CONCURRENCY, default 1)")
    serve.add_argument("--config", help="path to plugins.toml (CCPROXY_CONFIG)")
    serve.add_argument("--env-file", help="path to a .env file (default ./.env)")
    serve.add_argument("--log-level", help="LOG_LEVEL: DEBUG, INFO, WARNING, ERROR")
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        default=None,
        help="serve a non-loopback HOST without client keys (ALLOW_UNAUTHENTICATED)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="serve every model with the offline demo provider: canned answers, no key, no upstream (ccproxy-demo)",
    )
    commands.add_parser(
        "code",
        help="start the proxy in the background if none answers on HOST:PORT, then run Claude Code against it "
        "(every argument after `code` goes to claude)",
    )
    status = commands.add_parser("status", help="what answers on HOST:PORT: process, routes, backends' health")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--config", help="path to plugins.toml (CCPROXY_CONFIG)")
    status.add_argument("--env-file", help="path to a .env file (default ./.env)")
    plugins = commands.add_parser("plugins", help="list installed plugins, their versions and what they register")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.add_argument("--config", help="path to plugins.toml (CCPROXY_CONFIG)")
    plugins.add_argument("--env-file", help="path to a .env file (default ./.env)")
    return parser


def check_port_free(host: str, port: int) -> None:
    """Fail early, with a sentence, when the port is taken (11434 is also Ollama's default)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                hint = " (11434 is also Ollama's default port)" if port == OLLAMA_PORT else ""
                raise SettingsError(f"PORT: {host}:{port} is already in use{hint}; set PORT to a free port") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise SettingsError(f"HOST: cannot listen on {host!r}: address not available") from None
            raise SettingsError(f"HOST/PORT: cannot listen on {host}:{port}: {exc.strerror}") from None


def serve(settings: Settings, loader: AppLoader, app: Sanic) -> None:  # type: ignore[type-arg]  # any Sanic app
    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        single_process=settings.workers == 1,
        access_log=False,
        motd=False,
        protocol=DeadlineHttpProtocol,
    )
    if settings.workers == 1:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)


def list_plugins(args: argparse.Namespace) -> int:
    """`ccproxy plugins [--json]`: what is installed and what each plugin registers, without starting anything."""
    from ccproxy.plugin_info import describe_plugins, render_json, render_text
    from ccproxy.plugins import build_plugin_manager, collect

    try:
        # The listing builds no provider and calls no upstream, so it must not need an upstream key.
        settings = load_settings(config_path=args.config, env_file=args.env_file, api_key=LISTING_KEY)
        pm = build_plugin_manager(settings)
        infos = describe_plugins(pm, collect(pm, settings))
    except SettingsError as exc:
        print(f"ccproxy: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if args.json:
        print(json.dumps(render_json(infos, settings.disabled_plugins), indent=2))
    else:
        print(render_text(infos, settings.disabled_plugins))
    return 0


def launcher_command(command: str, args: Sequence[str], status_args: argparse.Namespace | None = None) -> int:
    """`ccproxy code ...` (every argument is Claude Code's) or `ccproxy status`."""
    from ccproxy import launcher

    config = getattr(status_args, "config", None)
    env_file = getattr(status_args, "env_file", None)
    # The launcher only reads settings (address, keys): an unset upstream key is the server's to report.
    loaded = launcher.load_for(
        command, partial(load_settings, config_path=config, env_file=env_file, api_key=LISTING_KEY)
    )
    if isinstance(loaded, int):
        return loaded
    if command == "status":
        return launcher.status(loaded, as_json=bool(getattr(status_args, "json", False)))
    return launcher.code(loaded, args, os.environ)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["code"]:  # before argparse: Claude Code's own options must pass through untouched
        return launcher_command("code", arguments[1:])
    args = build_parser().parse_args(arguments)
    if args.command == "plugins":
        return list_plugins(args)
    if args.command == "status":
        return launcher_command("status", (), args)
    try:
        settings = load_settings(
            config_path=getattr(args, "config", None),
            env_file=getattr(args, "env_file", None),
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            workers=getattr(args, "workers", None),
            log_level=getattr(args, "log_level", None),
            allow_unauthenticated=getattr(args, "allow_unauthenticated", None),
            **(demo_settings() if getattr(args, "demo", False) else {}),
        )
        check_port_free(settings.host, settings.port)
        settings, made_dir = metrics_dir_for_workers(settings)
        from ccproxy.app import create_app

        loader = AppLoader(factory=partial(create_app, settings))
        app = loader.load()  # here, so plugin, provider and route problems are reported as one line
    except SettingsError as exc:
        print(f"ccproxy: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except CompiledCoreError as exc:  # a stale or incomplete build, found when the app imports the core
        print(f"ccproxy: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        serve(settings, loader, app)
    finally:
        if made_dir is not None:
            shutil.rmtree(made_dir, ignore_errors=True)
    return 0


def demo_settings() -> dict[str, Any]:
    """`--demo`: one backend `demo` (the offline demo provider) instead of the configured ones, every model routed to
    it; the rest of the configuration (guardrails, keys, logging) still applies."""
    demo = BackendConfig(provider="demo").located("backends.demo")
    return {"backend_tables": {"demo": demo}, "routes": (("*", "demo:demo"),)}


def metrics_dir_for_workers(settings: Settings) -> tuple[Settings, str | None]:
    """The directory every worker writes its metrics (prometheus-client multiprocess files) and its usage totals to:
    PROMETHEUS_MULTIPROC_DIR emptied (whatever the number of workers: a previous run's files would count again), or
    with several workers a fresh temporary one (returned, to be removed after serving)."""
    if settings.workers == 1 and not settings.metrics_dir:
        return settings, None
    from ccproxy.metrics import clean_multiprocess_dir
    from ccproxy.worker_files import clean

    if settings.metrics_dir:
        try:
            os.makedirs(settings.metrics_dir, exist_ok=True)
            clean_multiprocess_dir(settings.metrics_dir)
            clean(settings.metrics_dir)
        except OSError as exc:
            where = settings.metrics_dir
            raise SettingsError(f"PROMETHEUS_MULTIPROC_DIR: cannot use {where!r}: {exc.strerror}") from None
        return settings, None
    made = tempfile.mkdtemp(prefix="ccproxy-metrics-")
    return dataclasses.replace(settings, metrics_dir=made), made
