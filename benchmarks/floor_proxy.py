"""The floor of our own stack: Sanic + one pooled aiohttp session forwarding bytes, parsing and translating nothing.

Run as `python benchmarks/floor_proxy.py --port N --upstream http://127.0.0.1:M/v1/chat/completions`. It answers
`GET /` and forwards `POST /v1/messages` bodies unchanged to the upstream: the upstream's JSON bytes come back as the
response, a stream is relayed read by read. load.py runs it with the proxy's own Sanic settings, so the difference
between ccproxy and this is what ccproxy's parsing, validation, conversion, translation and routing cost.
"""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

import aiohttp
from sanic import HTTPResponse, Request, Sanic
from sanic.config import Config
from sanic.response import json, raw

from sanic_config import server_config

STREAM_FLAG = b'"stream":true'

FloorApp = Sanic[Config, SimpleNamespace]


def create_app(upstream: str, api_key: str) -> FloorApp:
    app: FloorApp = Sanic("floor", config=server_config())
    sessions: dict[str, aiohttp.ClientSession] = {}

    @app.before_server_start
    async def open_session(app: FloorApp) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        sessions["upstream"] = aiohttp.ClientSession(
            connector=connector, headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"}
        )

    @app.after_server_stop
    async def close_session(app: FloorApp) -> None:
        await sessions["upstream"].close()

    @app.get("/")
    async def health(request: Request) -> HTTPResponse:
        return json({"status": "ok", "core": "floor"})

    @app.post("/v1/messages")
    async def messages(request: Request) -> HTTPResponse | None:
        body = request.body
        upstream_response = await sessions["upstream"].post(upstream, data=body)
        if STREAM_FLAG not in body:
            try:
                data = await upstream_response.read()
            finally:
                upstream_response.release()
            return raw(data, status=upstream_response.status, content_type="application/json")
        response = await request.respond(content_type="text/event-stream")
        if response is None:
            return None
        try:
            async for data in upstream_response.content.iter_any():
                await response.send(data)
        finally:
            upstream_response.release()
        await response.eof()
        return None

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's chat completions URL")
    parser.add_argument("--api-key", default="sk-bench")
    args = parser.parse_args(argv)
    app = create_app(args.upstream, args.api_key)
    app.run(host="127.0.0.1", port=args.port, single_process=True, access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
