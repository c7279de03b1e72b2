"""Make a captured request safe and stable to commit: credentials and the device id masked, temp paths normalised."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

MASK = "***MASKED***"
# Headers whose values are credentials; `authorization` keeps its scheme so the kind of auth stays visible.
SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})
# Identifiers of the installation or the account, wherever they appear in a JSON body or in metadata.user_id.
SECRET_KEYS = frozenset({"device_id", "account_uuid", "organization_uuid", "email", "userID"})
# The older metadata.user_id form: `user_<sha256 of the device>_account_<uuid>_session_<uuid>`.
_LEGACY_USER_ID = re.compile(r"user_[0-9a-f]{64}")


class Scrubber:
    """Rewrites every string of a captured request: temp paths to stable ones, then secrets masked."""

    def __init__(self, paths: list[tuple[str, str]]) -> None:
        # Longest first, so a path is not half-replaced by the rule for its parent directory.
        self._paths = sorted(paths, key=lambda pair: len(pair[0]), reverse=True)

    def text(self, value: str) -> str:
        for old, new in self._paths:
            value = value.replace(old, new)
        return _LEGACY_USER_ID.sub("user_" + MASK, value)

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {name: self._header(name, value) for name, value in headers.items()}

    def _header(self, name: str, value: str) -> str:
        if name.lower() not in SECRET_HEADERS:
            return self.text(value)
        scheme, _, credential = value.partition(" ")
        return f"{scheme} {MASK}" if credential else MASK

    def body(self, body: Any) -> Any:
        return _walk(body, self._string)

    def _string(self, key: str | None, value: str) -> Any:
        if key in SECRET_KEYS and value:
            return "MASKED"
        if key == "user_id":
            return self._user_id(value)
        return self.text(value)

    def _user_id(self, value: str) -> str:
        # Newer CLIs send a JSON string: {"device_id": ..., "account_uuid": ..., "session_id": ...}.
        try:
            inner = json.loads(value)
        except ValueError:
            return self.text(value)
        if not isinstance(inner, dict):
            return self.text(value)
        return json.dumps(_walk(inner, self._string), separators=(",", ":"))


def _walk(value: Any, on_string: Callable[[str | None, str], Any], key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, on_string, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(item, on_string, key) for item in value]
    if isinstance(value, str):
        return on_string(key, value)
    return value
