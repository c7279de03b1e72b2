"""A rule's regular expressions: every match in a whole text, and in a text that arrives in pieces (sans-IO).

Decisions a reader should know:
- A rule's patterns are matched one by one, never glued into one alternation: user patterns may use numbered groups
  and backreferences, and an alternation loses the `regex` module's fast scan for a literal start (1000 times slower
  on a long request). What is replaced is the union of all their matches: overlapping or touching matches become one
  replacement.
- Streaming gives exactly the result of matching the whole text at once. Text is released as soon as no match can
  start in it any more: for each pattern, the earliest position from which some way of matching reaches the end of
  the text received so far is found with `(?:pattern)\\Z` and partial matching (the `regex` module); everything
  before it is settled, everything from it is held back. So only a possible match in progress is held (a `sk-`
  prefix, an unfinished e-mail address), never a fixed window, and tokens keep flowing.
- A pattern without an upper bound (`.*`, `+`) could hold text back forever: `max_hold` caps what one stream may hold
  (in characters); beyond it the held text counts as a match and is replaced (it fails safe, not open).
- Lookbehinds and `\\b` see up to CONTEXT characters of text already released.
- Every search of a pattern from the configuration has a time limit (`timeout`): a catastrophic pattern raises
  TimeoutError, which the rule's failure policy handles, instead of stalling the event loop. The built-in detectors
  are bounded and have none (a time limit costs ~2 µs per search, and a stream searches on every delta).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import regex

# Characters of released text kept in front of held text for lookbehinds and \b.
CONTEXT = 256
_SURROGATE = regex.compile(r"[\ud800-\udfff]")

# A match: (start, end, label).
Span = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class Pattern:
    """One compiled regular expression and its label; `to_end` matches it ending exactly at the end of the text.
    When it has a `secret` group, only that part of a match is replaced."""

    compiled: regex.Pattern[str]
    to_end: regex.Pattern[str]
    label: str
    literals: tuple[str, ...] = ()  # every match starts with one of these (none: unknown)
    timeout: float | None = None  # seconds one search may take

    def span(self, match: regex.Match[str]) -> tuple[int, int]:
        """What to replace of `match`: its `secret` group, or all of it."""
        return match.span("secret") if "secret" in self.compiled.groupindex else match.span()


def compile_pattern(source: str, label: str, literals: tuple[str, ...] = (), timeout: float | None = None) -> Pattern:
    """`source` compiled; ValueError (with the reason) for a pattern that is invalid or matches the empty text."""
    try:
        compiled = regex.compile(source, regex.V0)
    except regex.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    if compiled.match("") is not None:
        raise ValueError("the pattern matches the empty text")
    # A newline first in verbose mode, so a trailing `# comment` in the pattern cannot swallow the `)\Z`.
    closing = "\n)" if compiled.flags & regex.VERBOSE else ")"
    to_end = regex.compile("(?:" + source + closing + r"\Z", regex.V0)
    return Pattern(compiled, to_end, label, literals, timeout)


@dataclass(frozen=True, slots=True)
class Redaction:
    """A text with its matches replaced: how many replacements, and which patterns matched."""

    text: str
    count: int
    labels: frozenset[str]


def merged(spans: Iterable[Span]) -> list[tuple[int, int, frozenset[str]]]:
    """Spans sorted and joined where they overlap or touch."""
    out: list[tuple[int, int, frozenset[str]]] = []
    for start, end, label in sorted(spans):
        if out and start <= out[-1][1]:
            first, last, labels = out[-1]
            out[-1] = (first, max(last, end), labels | {label})
        else:
            out.append((start, end, frozenset((label,))))
    return out


class Matcher:
    """The patterns of one rule, and the screen for streams: one search for the literals that the matches of most
    patterns start with (see StreamRedactor)."""

    __slots__ = ("_cut_set", "_cuts", "_longest_cut", "patterns", "screen", "screened", "unscreened")

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        self.patterns = tuple(patterns)
        self.screened = tuple(index for index, pattern in enumerate(self.patterns) if pattern.literals)
        self.unscreened = tuple(index for index, pattern in enumerate(self.patterns) if not pattern.literals)
        literals = sorted({literal for index in self.screened for literal in self.patterns[index].literals})
        self.screen = re.compile("|".join(map(re.escape, literals))) if literals else None
        # Every proper beginning of a literal: text ending with one may be a match in progress.
        self._cut_set = frozenset(literal[:size] for literal in literals for size in range(1, len(literal)))
        self._cuts = tuple(self._cut_set)
        self._longest_cut = max(map(len, self._cuts), default=0)

    def cut_start(self, text: str, position: int) -> int:
        """Where, at or after `position`, `text` ends with the beginning of a literal; len(text) when it does not."""
        if not text.endswith(self._cuts):
            return len(text)
        for start in range(max(position, len(text) - self._longest_cut), len(text)):
            if text[start:] in self._cut_set:
                return start
        return len(text)

    def first(self, text: str) -> str | None:
        """The label of a pattern that matches `text`, or None."""
        for pattern in self.patterns:
            if pattern.compiled.search(text, timeout=pattern.timeout) is not None:
                return pattern.label
        return None

    def redact(self, text: str, replacement: str) -> Redaction | None:
        """`text` with every match replaced, or None when nothing matches (the common case, without copying)."""
        spans = [
            (*pattern.span(found), pattern.label)
            for pattern in self.patterns
            for found in pattern.compiled.finditer(text, timeout=pattern.timeout)
        ]
        spans = [span for span in spans if span[1] > span[0]]
        if not spans:
            return None
        parts: list[str] = []
        position = 0
        labels: set[str] = set()
        joined = merged(spans)
        for start, end, found in joined:
            parts += (text[position:start], replacement)
            labels |= found
            position = end
        parts.append(text[position:])
        return Redaction("".join(parts), len(joined), frozenset(labels))


class StreamRedactor:
    """One text that arrives in pieces: `feed(piece)` returns what may be released now, with every settled match
    replaced; `finish()` the rest. The output joined is `Matcher.redact` of the input joined (see the module notes).

    Each call either completes or raises without changing the state, so after a failure `held()` is exactly the text
    received and not yet released.

    The screen: most pieces of text contain none of the literals the screened patterns' matches start with; then
    none of those patterns can match in it, and the only match in progress is one whose literal is cut off at the
    end, so the text is settled up to there without a single regular-expression search.
    """

    __slots__ = (
        "_base",
        "_buffer",
        "_keep",
        "_mask_end",
        "_scan",
        "_screen_from",
        "_spans",
        "count",
        "labels",
        "matcher",
        "max_hold",
        "replacement",
    )

    def __init__(self, matcher: Matcher, replacement: str, max_hold: int) -> None:
        self.matcher = matcher
        self.replacement = replacement
        self.max_hold = max_hold
        self.count = 0
        self.labels: set[str] = set()
        self._buffer = ""  # text from absolute position `_keep` on: context, then held text
        self._keep = 0
        self._base = 0  # absolute position up to which text was released
        self._scan = [0] * len(matcher.patterns)  # per pattern: where its matching continues (absolute)
        self._screen_from = 0  # screened patterns have settled everything before this, whatever `_scan` says
        self._spans: list[Span] = []  # settled matches not yet (wholly) released
        self._mask_end = -1  # absolute end of the last replacement written

    def held(self) -> str:
        """The text received and not yet released."""
        return self._buffer[self._base - self._keep :]

    def feed(self, piece: str) -> str:
        if not piece:
            return ""
        matcher = self.matcher
        buffer = self._buffer + piece
        keep = self._keep
        end = keep + len(buffer)
        screened_hold = self._screened_hold(buffer)
        if (
            screened_hold is not None
            and not matcher.unscreened
            and not self._spans
            and end - screened_hold <= self.max_hold
        ):
            return self._release_plain(buffer, screened_hold)
        scan, spans = self._scan_from(screened_hold), list(self._spans)
        holds = list(scan)
        for index in range(len(scan)) if screened_hold is None else matcher.unscreened:
            holds[index] = self._advance(index, buffer, scan, spans)
        release = min(holds, default=end)
        while end - release > self.max_hold:  # a match in progress for too long: it counts as one, up to here
            index = holds.index(release)
            spans.append((release, end, matcher.patterns[index].label))
            scan[index] = holds[index] = end
            release = min(holds)
        return self._commit(buffer, scan, spans, release)

    def finish(self) -> str:
        """Everything still held, with the matches that the end of the text settles."""
        matcher = self.matcher
        buffer = self._buffer
        keep = self._keep
        end = keep + len(buffer)
        screened_hold = self._screened_hold(buffer)
        scan, spans = self._scan_from(screened_hold), list(self._spans)
        for index in range(len(scan)) if screened_hold is None else matcher.unscreened:
            pattern = matcher.patterns[index]
            for found in pattern.compiled.finditer(buffer, scan[index] - keep, timeout=pattern.timeout):
                start, stop = pattern.span(found)
                if stop > start:
                    spans.append((keep + start, keep + stop, pattern.label))
        return self._commit(buffer, [end] * len(scan), spans, end)

    def _screened_hold(self, buffer: str) -> int | None:
        """Where a match of a screened pattern may be in progress, when none of their literals occurs in the text
        they have not settled (else None: they must be searched)."""
        screen = self.matcher.screen
        if screen is None:
            return None
        position = self._screen_from - self._keep
        if screen.search(buffer, position) is not None:
            return None
        return self._keep + self.matcher.cut_start(buffer, position)

    def _scan_from(self, screened_hold: int | None) -> list[int]:
        """Each pattern's scan position, the screened ones raised to what the screen settled."""
        scan = list(self._scan)
        floor = self._screen_from if screened_hold is None else max(self._screen_from, screened_hold)
        for index in self.matcher.screened:
            if scan[index] < floor:
                scan[index] = floor
        return scan

    def _release_plain(self, buffer: str, release: int) -> str:
        """Release up to `release` when nothing was matched: the screen's fast path."""
        keep = self._keep
        text = buffer[self._base - keep : release - keep]
        new_keep = max(keep, release - CONTEXT)
        self._buffer = buffer[new_keep - keep :]
        self._keep = new_keep
        self._base = self._screen_from = release
        return text

    def _advance(self, index: int, buffer: str, scan: list[int], spans: list[Span]) -> int:
        """Settle pattern `index`'s matches in `buffer`; returns where its possible match in progress starts."""
        pattern = self.matcher.patterns[index]
        timeout = pattern.timeout
        keep = self._keep
        position = scan[index] - keep
        while True:
            in_progress = pattern.to_end.search(buffer, position, partial=True, timeout=timeout)
            hold = in_progress.start() if in_progress is not None else len(buffer)
            # Not cut at `hold`: lookaheads and \b of a settled match may look past it.
            found = pattern.compiled.search(buffer, position, timeout=timeout) if position < hold else None
            if found is None or found.start() >= hold:
                scan[index] = keep + hold
                return keep + hold
            start, end = pattern.span(found)
            if end > start:
                spans.append((keep + start, keep + end, pattern.label))
            position = found.end() if found.end() > found.start() else found.start() + 1

    def _commit(self, buffer: str, scan: list[int], spans: list[Span], release: int) -> str:
        """Release the text before `release` with its matches replaced, and keep the new state."""
        keep, position, mask_end = self._keep, self._base, self._mask_end
        parts: list[str] = []
        later: list[Span] = []
        for start, end, labels in merged(spans):
            if start >= release:
                later.extend((start, end, label) for label in labels)
                continue
            if start > position:
                parts.append(buffer[position - keep : start - keep])
                position = start
            if start > mask_end:
                parts.append(self.replacement)
                self.count += 1
            self.labels |= labels
            mask_end = max(mask_end, end)
            position = max(position, min(end, release))
            if end > release:  # the rest of this match is replaced with what was just written
                later.extend((release, end, label) for label in labels)
        if position < release:
            parts.append(buffer[position - keep : release - keep])
        new_keep = max(keep, release - CONTEXT)
        self._buffer = buffer[new_keep - keep :]
        self._keep, self._base, self._mask_end = new_keep, release, mask_end
        self._scan, self._spans = scan, later
        self._screen_from = min((scan[index] for index in self.matcher.screened), default=release)
        return "".join(parts)


def json_string_body(text: str) -> str:
    """`text` as the inside of a JSON string; lone surrogates escaped, so the result is always valid UTF-8."""
    encoded = json.dumps(text, ensure_ascii=False)[1:-1]
    if _SURROGATE.search(encoded) is None:
        return encoded
    return _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", encoded)
