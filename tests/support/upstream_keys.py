"""Upstream keys of the shapes providers hand out, and a check that finds any trace of one in text."""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import quote, quote_plus

# The shortest piece of a key that counts as a leak (ccproxy.redaction.PARTIAL_ECHO_CHARS).
LEAK_CHARS = 12


def key_shapes() -> dict[str, str]:
    """One fresh key per shape, unique per run so that finding one anywhere can only mean a leak."""
    token = secrets.token_hex
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    claims = base64.urlsafe_b64encode(json.dumps({"sub": token(8)}).encode()).rstrip(b"=").decode()
    return {
        "openai-project": f"sk-proj-{token(24)}_{token(8)}-{token(6)}",
        "plain-hex": token(32),
        "jwt": f"{header}.{claims}.{base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b'=').decode()}",
        "punctuated": f"key_{token(6)}-{token(6)}.{token(4)}/{token(6)}+{token(6)}==",
        "openrouter": f"sk-or-v1-{token(32)}",
    }


def leaked_pieces(text: str, key: str) -> list[str]:
    """Every LEAK_CHARS-long piece of `key` (or of its URL-encoded spellings) that occurs in `text`."""
    found = []
    for form in {key, quote(key, safe=""), quote_plus(key), json.dumps(key)[1:-1]}:
        for start in range(len(form) - LEAK_CHARS + 1):
            piece = form[start : start + LEAK_CHARS]
            if piece in text:
                found.append(piece)
    return found
