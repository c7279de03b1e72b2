"""`ccproxy serve`: load settings, check the port, start Sanic; start-up problems are one line, not a traceback."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from collections.abc import Sequence
from functools import partial

from sanic import Sanic
from sanic.worker.loader import AppLoader

from ccproxy import __version__
from ccproxy.settings import Settings, SettingsError, load_settings

EXIT_CONFIG_ERROR = 2
OLLAMA_PORT = 11434


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


def serve(settings: Settings) -> None:
    from ccproxy.app import create_app

    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        single_process=settings.workers == 1,
        access_log=False,
        motd=False,
    )
    if settings.workers == 1:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(
            config_path=getattr(args, "config", None),
            env_file=getattr(args, "env_file", None),
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            workers=getattr(args, "workers", None),
            log_level=getattr(args, "log_level", None),
        )
        check_port_free(settings.host, settings.port)
        from ccproxy.app import build_state

        build_state(settings)  # once up front, so plugin and provider problems are reported as one line
    except SettingsError as exc:
        print(f"ccproxy: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    serve(settings)
    return 0
