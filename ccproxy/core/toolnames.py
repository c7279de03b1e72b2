"""Tool names longer than OpenAI's 64-character limit, shortened deterministically and mapped back."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

OPENAI_TOOL_NAME_LIMIT = 64
_HASH_LEN = 8


def shorten_tool_name(name: str) -> str:
    """`name` unchanged when it fits; else a prefix and a hash of the full name, exactly 64 chars."""
    if len(name) <= OPENAI_TOOL_NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HASH_LEN]
    return f"{name[: OPENAI_TOOL_NAME_LIMIT - _HASH_LEN - 1]}_{digest}"


class ToolNameMap:
    """Both directions of the name mapping for one request; empty when every name fits."""

    __slots__ = ("_to_client", "_to_upstream")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._to_upstream: dict[str, str] = {}
        self._to_client: dict[str, str] = {}
        for name in names:
            self.add(name)

    def add(self, name: str) -> str:
        short = shorten_tool_name(name)
        if short != name:
            self._to_upstream[name] = short
            self._to_client[short] = name
        return short

    def to_upstream(self, name: str) -> str:
        """The name sent upstream; unknown long names (e.g. only in history) are shortened too."""
        mapped = self._to_upstream.get(name)
        if mapped is not None:
            return mapped
        return self.add(name) if len(name) > OPENAI_TOOL_NAME_LIMIT else name

    def to_client(self, name: str) -> str:
        """The original name for a name the upstream used."""
        return self._to_client.get(name, name)

    def __bool__(self) -> bool:
        return bool(self._to_client)
