"""Sanic handlers only: parse, status codes, SSE framing."""
