"""Keeps the upstream credentials out of everything that leaves the process: error bodies, error events, log lines.

Upstream error text is untrusted: providers echo the key they rejected (in full, masked, cut short, URL-encoded or
inside a JSON string), and aiohttp's exception text can quote what the upstream sent. Rather than redacting at each
place such text is picked up, the app redacts where text leaves: every client-bound error message is rendered by
`Redactor.public` (the HTTP error handlers and `StreamTranslator.error_events` call nothing else), and every record
of a `ccproxy` logger passes a `RedactingFilter` on the one handler those loggers write to.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

from ccproxy.errors import ProxyError

REDACTED = "[redacted]"
# Shorter values are placeholders that local servers accept ("EMPTY", "ollama", "dummy"), not secrets; redacting
# them would garble ordinary words in every log line.
MIN_SECRET_CHARS = 8
# A run of key characters sharing this many consecutive characters with a secret is a partial echo of it (a key the
# upstream cut short, or a prefix glued to other text) and is removed whole.
PARTIAL_ECHO_CHARS = 12
# Client-bound error messages are cut to this length (after redaction, so no cut can expose a key's head).
MAX_CLIENT_MESSAGE = 2000
# Anything shaped like a vendor key or a bearer token, configured or not (e.g. OpenAI's `sk-ab***yz` masking).
_KEYLIKE = re.compile(r"\b(?:sk|rk|pk|or|key)-[A-Za-z0-9_\-*]{6,}|(?i:\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}")
# Characters a key or its URL-encoded form is made of; runs of them are checked for partial echoes.
_KEY_RUN = re.compile(r"[A-Za-z0-9_\-.+/=%~]{" + str(PARTIAL_ECHO_CHARS) + ",}")


def secret_forms(secret: str) -> set[str]:
    """The spellings in which `secret` can come back: as is, URL-encoded, JSON-escaped (twice, for a JSON body
    quoted inside an error message)."""
    once = json.dumps(secret)[1:-1]
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        once,
        once.replace("/", "\\/"),
        json.dumps(once)[1:-1],
    }


class Redactor:
    """Replaces the configured secrets, in any of their spellings and partial echoes, and key-shaped strings.

    Built once per app from the secrets the provider holds (`Provider.secrets()`); pure and thread-safe.
    """

    def __init__(self, secrets: Iterable[object] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= MIN_SECRET_CHARS:
                forms |= secret_forms(secret)
        self.enabled = bool(forms)
        # Longest first, so a spelling that contains another is replaced whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._exact = re.compile("|".join(map(re.escape, ordered))) if forms else None
        self._fragments = frozenset(
            form[start : start + PARTIAL_ECHO_CHARS]
            for form in forms
            for start in range(len(form) - PARTIAL_ECHO_CHARS + 1)
        )

    def __call__(self, text: str) -> str:
        if self._exact is not None:
            text = self._exact.sub(REDACTED, text)
            if self._fragments:
                text = _KEY_RUN.sub(self._partial_echo, text)
        return _KEYLIKE.sub(REDACTED, text)

    def _partial_echo(self, match: re.Match[str]) -> str:
        run = match.group()
        fragments = self._fragments
        for start in range(len(run) - PARTIAL_ECHO_CHARS + 1):
            if run[start : start + PARTIAL_ECHO_CHARS] in fragments:
                return REDACTED
        return run

    def message(self, text: str) -> str:
        """A client-bound message: redacted, then cut to MAX_CLIENT_MESSAGE."""
        return self(text)[:MAX_CLIENT_MESSAGE]

    def public(self, error: ProxyError) -> ProxyError:
        """`error` as a client may see it: the one place client-bound error messages are rendered."""
        message = self.message(error.message)
        if message == error.message:
            return error
        return ProxyError(message, status=error.status, error_type=error.error_type, headers=error.headers)


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments, exception and stack text before any handler formats it.

    The record is changed in place, so handlers added after this one (pytest's caplog, a JSON formatter) see the
    redacted record too; the exception is kept only as redacted text (`exc_text`), never as the exception object.
    """

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
