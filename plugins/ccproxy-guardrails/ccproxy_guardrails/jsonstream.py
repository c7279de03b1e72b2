"""Streamed tool-call arguments (`input_json_delta` fragments) with the content of every JSON string redacted (sans-IO).

Matching runs on the decoded content of each string (keys and values alike), so a secret written with escapes
(`\\u0073k-...`, or a private key's `\\n` line breaks) is found, and a fragment boundary inside an escape sequence or a
surrogate pair changes nothing. Released content is written back as JSON string content (json.dumps rules, lone
surrogates escaped), so the fragments still join into valid JSON that parses to the original value with each match
replaced. Text outside strings (structure, numbers, literals) passes at once. An invalid escape (broken JSON) is kept
as its literal characters; an unterminated string at the end stays unterminated.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ccproxy_guardrails.matcher import StreamRedactor, json_string_body

_PLAIN = re.compile(r'[^"\\]+')
_OUTSIDE = re.compile(r'[^"]+')
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")

# Parsed pieces of a fragment: (kind, text, where its raw text starts in carry + fragment).
_RAW = 0  # JSON text outside strings
_OPEN = 1  # an opening quote
_CHARS = 2  # decoded string content
_CLOSE = 3  # a closing quote
Item = tuple[int, str, int]


class JsonRedactor:
    """The fragments of one tool call's arguments; `feed` returns the JSON text to pass on, `finish` the rest.

    When `feed` or `finish` raises (a pattern timed out), `salvage` is what had been received and not passed on,
    as JSON text, so a rule that fails open can still pass the arguments on whole.
    """

    __slots__ = ("_count", "_escape", "_high", "_in_string", "_labels", "_new_segment", "_segment", "salvage")

    def __init__(self, new_segment: Callable[[], StreamRedactor]) -> None:
        self._new_segment = new_segment
        self._segment: StreamRedactor | None = None  # the open string's
        self._in_string = False  # parse state (ahead of `_segment` while a fragment is being parsed)
        self._escape = ""  # an escape sequence begun and not complete ("\\", "\\u00")
        self._high = ""  # a decoded high surrogate waiting for the low half of its pair
        self._count = 0  # replacements in closed strings
        self._labels: set[str] = set()
        #: After `feed` or `finish` raised: what had been received and not passed on, as JSON text.
        self.salvage: str | None = None

    @property
    def count(self) -> int:
        """Replacements so far, the open string's included."""
        return self._count + (self._segment.count if self._segment is not None else 0)

    @property
    def labels(self) -> set[str]:
        return self._labels | self._segment.labels if self._segment is not None else self._labels

    def feed(self, fragment: str) -> str:
        carry = self._carry()
        continuing = self._in_string
        items = self._parse(fragment, len(carry), continuing)
        return self._run(items, carry + fragment)

    def finish(self) -> str:
        if not self._in_string:
            return ""
        carry, escape = self._carry(), self._escape
        items: list[Item] = [(_CHARS, self._high, 0)] if self._high else []
        self._high = self._escape = ""
        self._in_string = False
        out = self._run([*items, (_CLOSE, "", len(carry))], carry)
        return out[:-1] + escape  # no closing quote: it never came

    def _carry(self) -> str:
        """The begun and not yet decoded part of the open string, as JSON text."""
        return (json_string_body(self._high) if self._high else "") + self._escape

    def _run(self, items: list[Item], raw: str) -> str:
        out: list[str] = []
        for kind, text, start in items:
            try:
                out.append(self._item(kind, text))
            except Exception:
                held = self._segment.held() if self._segment is not None else ""
                self.salvage = "".join(out) + json_string_body(held) + raw[start:]
                raise
        return "".join(out)

    def _item(self, kind: int, text: str) -> str:
        if kind == _RAW:
            return text
        if kind == _OPEN:
            self._segment = self._new_segment()
            return '"'
        segment = self._segment
        if segment is None:  # content of a string opened before a failure reset; cannot happen in one stream
            return json_string_body(text)
        if kind == _CHARS:
            return json_string_body(segment.feed(text))
        released = segment.finish()
        self._count += segment.count
        self._labels |= segment.labels
        self._segment = None
        return json_string_body(released) + '"'

    def _parse(self, fragment: str, offset: int, continuing: bool) -> list[Item]:
        """Split `fragment` into raw JSON, quotes and decoded string content; keeps the parse state."""
        items: list[Item] = []
        chars: list[str] = []
        chars_from = 0 if continuing else -1  # 0: the carry belongs to this content
        position = 0
        while position < len(fragment):
            if not self._in_string:
                found = _OUTSIDE.match(fragment, position)
                if found is not None:
                    items.append((_RAW, found.group(), offset + position))
                    position = found.end()
                    continue
                items.append((_OPEN, '"', offset + position))
                self._in_string = True
                position += 1
                chars_from = offset + position
            elif self._escape or fragment[position] == "\\":
                position = self._on_escape(fragment, position, chars)
            elif (found := _PLAIN.match(fragment, position)) is not None:
                self._flush_high(chars)
                chars.append(found.group())
                position = found.end()
            else:  # the closing quote
                self._flush_high(chars)
                if chars:
                    items.append((_CHARS, "".join(chars), chars_from))
                    chars = []
                items.append((_CLOSE, '"', offset + position))
                self._in_string = False
                position += 1
        if chars:
            items.append((_CHARS, "".join(chars), chars_from))
        return items

    def _on_escape(self, fragment: str, position: int, chars: list[str]) -> int:
        """Continue the escape sequence at `position`; returns where parsing goes on."""
        if not self._escape:
            self._escape = "\\"
            position += 1
        while position < len(fragment):
            self._escape += fragment[position]
            position += 1
            decoded = _decoded(self._escape)
            if decoded is not None:
                self._escape = ""
                self._on_char(decoded, chars)
                break
        return position

    def _on_char(self, decoded: str, chars: list[str]) -> None:
        if self._high and "\udc00" <= decoded <= "\udfff":
            chars.append((self._high + decoded).encode("utf-16", "surrogatepass").decode("utf-16"))
            self._high = ""
            return
        self._flush_high(chars)
        if len(decoded) == 1 and "\ud800" <= decoded <= "\udbff":
            self._high = decoded
        else:
            chars.append(decoded)

    def _flush_high(self, chars: list[str]) -> None:
        if self._high:
            chars.append(self._high)
            self._high = ""


def _decoded(escape: str) -> str | None:
    """The text of a complete escape sequence (itself when invalid); None while it is incomplete."""
    kind = escape[1]
    if kind != "u":
        return _SIMPLE_ESCAPES.get(kind, escape)
    digits = escape[2:]
    if not all(digit in _HEX for digit in digits):
        return escape
    return chr(int(digits, 16)) if len(digits) == 4 else None
