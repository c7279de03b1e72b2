"""Keeps the upstream credentials out of everything that leaves the process: error bodies, error events, log lines.

Upstream error text is untrusted: providers echo the key they rejected (in full, masked, cut short, URL-encoded or
inside a JSON string), and aiohttp's exception text can quote what the upstream sent. Rather than redacting at each
place such text is picked up, the app redacts where text leaves: every client-bound error message is rendered by
the app's one `Redactor` (`public` in the HTTP error handlers, `message` through `ResponseContext.public_message` in
`StreamTranslator.error_events`, the only maker of stream error events), and every record of a `ccproxy` logger
passes a `RedactingFilter` on the one handler those loggers write to.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
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
_KEYLIKE = re.compile(r"\b(?:sk|rk|pk|or|key)-[A-Za-z0-9_\-*]{6,}|\b(?:[Bb]earer|BEARER)\s+[A-Za-z0-9._~+/=\-]{8,}")
# Characters a key or its URL-encoded form is made of; runs of them are checked for partial echoes.
_KEY_RUN = re.compile(r"[A-Za-z0-9_\-.+/=%~]{" + str(PARTIAL_ECHO_CHARS) + ",}")
# Short texts seen again (log messages, model names, key ids in log fields) are redacted once and remembered.
MEMO_MAX_CHARS = 256
MEMO_ENTRIES = 4096
# Runs are screened with half-length pieces at a stride of their length: an echo of PARTIAL_ECHO_CHARS characters
# always contains one such piece, so a run without any costs a few set lookups (every log record is screened).
_SCREEN_CHARS = PARTIAL_ECHO_CHARS // 2


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


def _pieces(forms: set[str], length: int) -> frozenset[str]:
    """Every `length`-character piece of every form."""
    return frozenset(form[start : start + length] for form in forms for start in range(len(form) - length + 1))


class Redactor:
    """Replaces the configured secrets, in any of their spellings and partial echoes, and key-shaped strings.

    Built once per app from the secrets the provider holds (`Provider.secrets()`); pure and thread-safe.
    """

    def __init__(self, secrets: Iterable[object] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= MIN_SECRET_CHARS:
                forms |= secret_forms(secret)
        # Longest first, so a spelling that contains another is replaced whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._exact = re.compile("|".join(map(re.escape, ordered))) if forms else None
        self._fragments = _pieces(forms, PARTIAL_ECHO_CHARS)
        self._screen = _pieces(forms, _SCREEN_CHARS)
        self._memo: dict[str, str] = {}

    def remembered(self, text: str) -> str:
        """`self(text)`, remembered for short texts: log lines repeat the same messages and field values."""
        found = self._memo.get(text)
        if found is None:
            found = self(text)
            if len(text) <= MEMO_MAX_CHARS and len(self._memo) < MEMO_ENTRIES:
                self._memo[text] = found
        return found

    def __call__(self, text: str) -> str:
        if self._exact is not None:
            text = self._exact.sub(REDACTED, text)
            if self._may_echo(text):
                text = self._without_partial_echoes(text)
        # Cheap substring tests first: most log lines hold nothing key-shaped.
        if "k-" in text or "r-" in text or "y-" in text or "earer" in text or "EARER" in text:
            text = _KEYLIKE.sub(REDACTED, text)
        return text

    def _may_echo(self, text: str) -> bool:
        """False when `text` holds no piece of a secret: checked at a stride, as in `_echoes`."""
        screen = self._screen
        return any(
            text[start : start + _SCREEN_CHARS] in screen
            for start in range(0, len(text) - _SCREEN_CHARS + 1, _SCREEN_CHARS)
        )

    def _without_partial_echoes(self, text: str) -> str:
        spans = [match.span() for match in _KEY_RUN.finditer(text) if self._echoes(match.group())]
        if not spans:
            return text
        parts: list[str] = []
        end = 0
        for start, stop in spans:
            parts += (text[end:start], REDACTED)
            end = stop
        parts.append(text[end:])
        return "".join(parts)

    def _echoes(self, run: str) -> bool:
        if not self._may_echo(run):
            return False
        fragments = self._fragments
        return any(
            run[start : start + PARTIAL_ECHO_CHARS] in fragments for start in range(len(run) - PARTIAL_ECHO_CHARS + 1)
        )

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
    Text values of a record's `fields` (the usage record, ccproxy/logs.py) are redacted too. Every handler carries
    the filter; a record already redacted by this same redactor passes at no cost.
    """

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact
        # A Redactor remembers short texts it redacted before (the same messages and field values recur).
        self.redact_text: Callable[[str], str] = redact.remembered if isinstance(redact, Redactor) else redact

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "redacted_by", None) is self.redact:
            return True  # a record reaches each handler: the first one's filter did the work
        record.redacted_by = self.redact
        fields = getattr(record, "fields", None)
        if fields:
            record.fields = self.redacted_fields(fields)
        try:
            message = record.getMessage()
        except Exception:  # a filter that raises would fail the logging call itself, i.e. the request
            message = f"{record.msg} (arguments that do not fit the format: {record.args!r})"
        record.msg = self.redact_text(message)
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

    def redacted_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A record's `fields` (ccproxy/logs.py) with every text value redacted (the same dict when none changes)."""
        redact = self.redact_text
        changed: dict[str, Any] | None = None
        for key, value in fields.items():
            if isinstance(value, str):
                redacted = redact(value)
                if redacted != value:
                    if changed is None:
                        changed = dict(fields)
                    changed[key] = redacted
        return fields if changed is None else changed
