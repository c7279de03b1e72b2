"""The redactor: every spelling and partial echo of a configured key goes, in text, error bodies and log records."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from ccproxy.errors import ProxyError
from ccproxy.interfaces import Provider, ProviderConfig
from ccproxy.redaction import MAX_CLIENT_MESSAGE, REDACTED, RedactingFilter, Redactor
from tests.support.upstream_keys import key_shapes, leaked_pieces

KEYS = key_shapes()
SHAPES = pytest.mark.parametrize("key", list(KEYS.values()), ids=list(KEYS))


def echoes(key: str) -> dict[str, str]:
    """How upstreams and HTTP libraries have been seen to quote a key back."""
    return {
        "whole": f"Incorrect API key provided: {key}.",
        "glued": f"auth failed for token={key}&retry=1 (x{key}x)",
        "url-encoded": f"GET /v1/models?api_key={quote(key, safe='')} failed",
        "form-encoded": f"key={quote_plus(key)}",
        "json-escaped": json.dumps({"detail": json.dumps({"error": f"bad key {key}"})}),
        "slash-escaped": '{"key":"' + key.replace("/", "\\/") + '"}',
        "cut-short": f"Incorrect API key provided: {key[:-6]}",
        "tail-only": f"...{key[6:]}",
        "bytes-repr": repr(f"HTTP/1.1 2x0 {key}".encode()),
        "bearer": f"sent Authorization: Bearer {key}",
    }


@SHAPES
@pytest.mark.parametrize("echo", list(echoes("k")))
def test_every_echo_of_every_key_shape_is_removed(key: str, echo: str) -> None:
    text = echoes(key)[echo]
    redacted = Redactor([key])(text)
    assert leaked_pieces(redacted, key) == []
    assert REDACTED in redacted


@SHAPES
def test_any_twelve_characters_of_a_key_at_any_offset_are_removed(key: str) -> None:
    redact = Redactor([key])
    for start in range(0, len(key) - 12, 5):
        for length in (12, 13, 17):
            for prefix in ("", "x", "ab ", "12345 "):
                text = f"{prefix}{key[start : start + length]} tail"
                assert leaked_pieces(redact(text), key) == [], text


@pytest.mark.parametrize(
    "text", ["key-0a1b2c3d4e", "or-v1-0a1b2c3d", "rk-live-0a1b2c3d", "Bearer 0a1b2c3d4e5f", "BEARER a.b.c.d.e.f"]
)
def test_key_shaped_strings_go_even_when_not_configured(text: str) -> None:
    assert Redactor()(f"got {text} here") == "got [redacted] here"


def test_text_around_the_key_survives() -> None:
    key = KEYS["plain-hex"]
    assert Redactor([key])(f"Incorrect API key provided: {key}. See the docs.") == (
        "Incorrect API key provided: [redacted]. See the docs."
    )


def test_openai_style_masks_of_other_keys_are_removed_too() -> None:
    assert Redactor()("Incorrect API key provided: sk-ab***********yz.") == "Incorrect API key provided: [redacted]."


def test_placeholder_keys_are_not_treated_as_secrets() -> None:
    # Local servers take any key; "EMPTY" and "ollama" are conventions, and removing them garbles ordinary words.
    redact = Redactor(["EMPTY", "ollama", None, ""])
    assert redact("EMPTY response from ollama") == "EMPTY response from ollama"


def test_unrelated_long_words_are_kept() -> None:
    redact = Redactor([KEYS["openai-project"]])
    text = "req_0123456789abcdef01234567 claude-sonnet-4-5-20250929 -> gpt-5 stream=True 12 ms"
    assert redact(text) == text


def test_client_messages_are_redacted_before_they_are_cut() -> None:
    key = KEYS["openai-project"]
    message = "x" * (MAX_CLIENT_MESSAGE - 5) + key
    public = Redactor([key]).public(ProxyError(message, status=401, headers={"retry-after": "3"}))
    assert len(public.message) == MAX_CLIENT_MESSAGE and leaked_pieces(public.message, key) == []
    assert (public.status, public.error_type, public.headers) == (401, "authentication_error", {"retry-after": "3"})


def test_an_error_without_secrets_is_passed_as_it_is() -> None:
    error = ProxyError("Upstream error 500: boom", status=502)
    assert Redactor([KEYS["plain-hex"]]).public(error) is error


# --- the logging filter --------------------------------------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, list[logging.LogRecord]]]:
    """A logger writing through a redacting handler, and a plain handler added after it (like pytest's caplog)."""
    logger = logging.getLogger("ccproxy.test_redaction")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(Redactor([KEYS["jwt"]])))
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger.handlers[:] = [handler, Keep()]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, records
    logger.handlers.clear()


def test_message_args_exception_and_stack_are_redacted(
    logged: tuple[logging.Logger, io.StringIO, list[logging.LogRecord]],
) -> None:
    logger, stream, records = logged
    key = KEYS["jwt"]
    logger.debug("upstream said %s", f"bad key {key}")
    logger.info(f"key {key} in the message itself")
    try:
        raise ValueError(f"rejected {key}")
    except ValueError:
        logger.exception("failed with %r", {"key": key})
    logger.warning("stack", stack_info=True, extra={"unused": key})
    output = stream.getvalue()
    assert leaked_pieces(output, key) == [] and output.count(REDACTED) >= 4
    assert "Traceback (most recent call last)" in output and "ValueError: rejected [redacted]" in output
    # Handlers after the filter see the same, already redacted record, never the exception object.
    for record in records:
        formatted = logging.Formatter().format(record)
        assert leaked_pieces(formatted, key) == [] and record.exc_info is None


def test_a_bad_format_call_is_logged_not_raised(
    logged: tuple[logging.Logger, io.StringIO, list[logging.LogRecord]],
) -> None:
    logger, stream, _ = logged
    logger.warning("two %s %s", f"only-one {KEYS['jwt']}")
    assert "two %s %s" in stream.getvalue() and leaked_pieces(stream.getvalue(), KEYS["jwt"]) == []


# --- where the secrets come from ---------------------------------------------------------------------------------


class HeaderProvider(Provider):
    name = "header-test"

    def capabilities(self, model: str) -> Any:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        return {
            **super().headers(),
            "x-api-key": "xk-0123456789abcdef",
            "proxy-authorization": "Basic dXNlcjpzM2NyZXQtcGFzc3dvcmQ=",
            "openai-organization": "org-not-a-secret",
        }


def test_the_provider_names_its_key_and_credential_headers() -> None:
    config = ProviderConfig(base_url="http://me:pw%2Fsecret-9@up.test/v1", api_key="sk-configured-key-123", options={})
    found = HeaderProvider(config).secrets()
    assert "pw/secret-9" in found and "pw%2Fsecret-9" in found
    assert "sk-configured-key-123" in found and "xk-0123456789abcdef" in found
    assert "dXNlcjpzM2NyZXQtcGFzc3dvcmQ=" in found and "s3cret-password" in found
    assert "org-not-a-secret" not in found and not any(value.startswith("Bearer") for value in found)
