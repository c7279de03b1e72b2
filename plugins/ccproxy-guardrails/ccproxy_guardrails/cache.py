"""A rule's memory of the texts it has scanned: the result per exact text, least recently used dropped first.

Why: Claude Code resends the whole conversation with every turn, so a rule on requests would scan every earlier
message again on every turn (280-380 µs for the 78 KB capture, benchmarks/README.md). A text seen before costs one
dict lookup instead. The key is the text itself (its hash is computed once per string object, and a hit is confirmed
by comparing the texts), so a result is only ever reused for an identical text. Each rule owns its cache, so a result
is never reused under other patterns, another replacement or another configuration. A scan that raises (a pattern's
time limit) stores nothing.

The texts are kept as the keys, in the worker's memory only (never written anywhere): a text in which a rule found a
secret stays in memory until it is dropped (without the cache: only while its request lasts).

Bounded by entries and by bytes (the strings' own sizes, `sys.getsizeof`, of the text and of a result that holds a
different text): a text larger than a quarter of the byte budget is scanned every time and never stored.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

Result = TypeVar("Result")

MAX_ENTRIES = 4096
MAX_BYTES = 16 * 1024 * 1024
_ENTRY_OVERHEAD = 100  # the OrderedDict node and the tuple per entry, roughly


class ScanCache(Generic[Result]):
    """`scan(text)` results, per exact text; `size(result)` is what a result adds beyond the text (0 when it holds
    no other text)."""

    __slots__ = ("_bytes", "_entries", "max_bytes", "max_entries", "scan", "size")

    def __init__(
        self,
        scan: Callable[[str], Result],
        size: Callable[[Result], int],
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.scan = scan
        self.size = size
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[Result, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The bytes the stored entries account for."""
        return self._bytes

    def get(self, text: str) -> Result:
        """The result of `scan(text)`, from memory when this text was scanned before."""
        entries = self._entries
        entry = entries.get(text)
        if entry is not None:
            entries.move_to_end(text)
            return entry[0]
        result = self.scan(text)
        cost = sys.getsizeof(text) + self.size(result) + _ENTRY_OVERHEAD
        if cost * 4 <= self.max_bytes:
            entries[text] = (result, cost)
            self._bytes += cost
            while len(entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped) = entries.popitem(last=False)
                self._bytes -= dropped
        return result
