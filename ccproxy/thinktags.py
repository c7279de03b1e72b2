"""`<think>...</think>` in a model's text -> an Anthropic thinking block, for streams and whole messages alike.

Local models (Qwen3, QwQ, DeepSeek-R1 and its distills) write their reasoning into the content when the server runs
no reasoning parser: `<think>reasoning</think>answer`. When the chat template already put the opening tag into the
prompt (Qwen3-Thinking, DeepSeek-R1-0528), the content starts inside the reasoning and only `</think>` appears.
For a backend whose capabilities say `think_tags`, the answer's FIRST block, when it is text, is split here:

- it starts with `<think>` (after blanks): thinking until `</think>`, streamed as it comes, then text;
- it does not: it is held until `</think>` shows that it was reasoning (sent then as one thinking block) or until
  the block ends without one (sent as the text it was). So an answer without any tag arrives in one piece; turn
  `think_tags` on only for models that think.

Only the leading think section is taken: a `<think>` later in the answer is text (the model may be writing about
tags), and a block after a tool call is never split. Tags split across chunks at any character are recognised. A
thinking block made from tags has no signature (`""`): it cannot be verified, so when Claude Code sends it back it is
dropped like any other unsigned thinking (`reasoning_replay = "drop"`), as the chat templates of these models drop
earlier turns' reasoning themselves.
"""

from __future__ import annotations

from typing import Any

from ccproxy.interfaces import StreamFilter

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
THINKING = "thinking"
TEXT = "text"

Piece = tuple[str, str]  # (THINKING or TEXT, its text): what the splitter sends on
Event = dict[str, Any]

# Splitter states.
_START = 0  # nothing but blanks (or a beginning of `<think>`) yet
_THINK = 1  # inside `<think>`, streaming
_MAYBE = 2  # no opening tag: holding until `</think>` or the end tells what it was
_TEXT = 3  # after the think section


def _partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of `text` could begin `tag` (held back until the next piece tells)."""
    tail = text[-(len(tag) - 1) :]
    start = tail.find("<")
    while start >= 0:
        if tag.startswith(tail[start:]):
            return len(tail) - start
        start = tail.find("<", start + 1)
    return 0


class ThinkTagSplitter:
    """The text of one block in pieces (`feed`) -> its think section and the text after it, as pieces ready to send.

    Blanks at the start of each section are dropped, and so is the blank line models put before `</think>`.
    """

    __slots__ = ("_held", "_lead", "_searched", "_state")

    def __init__(self) -> None:
        self._held = ""
        self._searched = 0  # where the search for `</think>` in held text starts again
        self._state = _START
        self._lead = True  # at the start of a section: blanks are dropped

    def feed(self, text: str) -> list[Piece]:
        self._held += text
        return self._advance(final=False)

    def end(self) -> list[Piece]:
        """The rest, once the block has ended."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> list[Piece]:
        out: list[Piece] = []
        while True:
            state = self._state
            if state == _START:
                stripped = self._held.lstrip()
                if stripped.startswith(OPEN_TAG):
                    self._enter(_THINK, stripped[len(OPEN_TAG) :])
                elif not final and OPEN_TAG.startswith(stripped):
                    return out  # blanks, or the beginning of `<think>`: wait
                else:
                    self._state = _MAYBE
            elif state == _MAYBE:
                # Only the new text (and a tag begun before it) is searched: held text can run to thousands of chars.
                end = self._held.find(CLOSE_TAG, self._searched)
                if end >= 0:
                    self._section(out, THINKING, self._held[:end].rstrip())
                    self._enter(_TEXT, self._held[end + len(CLOSE_TAG) :])
                elif final:
                    self._enter(_TEXT, self._held)  # no tag at all: it was text
                else:
                    self._searched = max(0, len(self._held) - len(CLOSE_TAG) + 1)
                    return out
            elif state == _THINK:
                end = self._held.find(CLOSE_TAG)
                if end >= 0:
                    self._section(out, THINKING, self._held[:end].rstrip())
                    self._enter(_TEXT, self._held[end + len(CLOSE_TAG) :])
                    continue
                # The start of `</think>` and the blanks before it wait: the blanks before the tag are dropped.
                keep = 0 if final else _partial_tag(self._held, CLOSE_TAG)
                ready = self._held[: len(self._held) - keep]
                if not final:
                    ready = ready.rstrip()
                self._held = self._held[len(ready) :]
                self._section(out, THINKING, ready)
                return out
            else:
                ready, self._held = self._held, ""
                self._section(out, TEXT, ready)
                return out

    def _enter(self, state: int, held: str) -> None:
        self._state = state
        self._held = held
        self._lead = True

    def _section(self, out: list[Piece], kind: str, text: str) -> None:
        if self._lead:
            text = text.lstrip()
            if not text:
                return
            self._lead = False
        if text:
            out.append((kind, text))


class ThinkTagFilter(StreamFilter):
    """The stream side: the first block's text deltas -> a thinking block and a text block, later blocks renumbered.

    Events of other blocks pass unchanged but for their index, which moves by the number of blocks the first one
    became, minus one (a think section alone, with the tool call right after it, keeps the numbering).
    """

    __slots__ = ("_base", "_first", "_made", "_open", "_shift", "_splitter", "_splitting")

    def __init__(self) -> None:
        self._splitter = ThinkTagSplitter()
        self._first = True  # the next content_block_start is the answer's first block
        self._splitting = False  # inside that block, and it is text
        self._base = 0  # its index
        self._made = 0  # blocks made from it so far
        self._open = ""  # THINKING or TEXT while one of them is open
        self._shift = 0

    def feed(self, event: Event) -> list[Event]:
        kind = event.get("type")
        if self._splitting:
            return self._inside(kind, event)
        if kind == "content_block_start" and self._first:
            self._first = False
            block = event["content_block"]
            if block.get("type") == TEXT:
                self._splitting = True
                self._base = event["index"]
                return self._send(self._splitter.feed(block.get("text") or ""))
        if self._shift and kind in ("content_block_start", "content_block_delta", "content_block_stop"):
            return [{**event, "index": event["index"] + self._shift}]
        return [event]

    def flush(self) -> list[Event]:
        return self._finish() if self._splitting else []

    def _inside(self, kind: Any, event: Event) -> list[Event]:
        if kind == "content_block_delta":
            delta = event["delta"]
            return self._send(self._splitter.feed(delta["text"])) if delta.get("type") == "text_delta" else []
        if kind == "content_block_stop":
            return self._finish()
        return [event]

    def _finish(self) -> list[Event]:
        events = self._send(self._splitter.end())
        self._close(events)
        self._splitting = False
        self._shift = self._made - 1
        return events

    def _send(self, pieces: list[Piece]) -> list[Event]:
        events: list[Event] = []
        for kind, text in pieces:
            if kind != self._open:
                self._close(events)
                block = (
                    {"type": THINKING, "thinking": "", "signature": ""}
                    if kind == THINKING
                    else {"type": TEXT, "text": ""}
                )
                events.append({"type": "content_block_start", "index": self._base + self._made, "content_block": block})
                self._made += 1
                self._open = kind
            delta = (
                {"type": "thinking_delta", "thinking": text}
                if kind == THINKING
                else {"type": "text_delta", "text": text}
            )
            events.append({"type": "content_block_delta", "index": self._base + self._made - 1, "delta": delta})
        return events

    def _close(self, events: list[Event]) -> None:
        if self._open:
            events.append({"type": "content_block_stop", "index": self._base + self._made - 1})
            self._open = ""


def split_think_tags(message: dict[str, Any]) -> dict[str, Any]:
    """The non-stream side: `message` with its first block, when it is text, split the way ThinkTagFilter splits a
    stream (a new dict; `message` is not changed)."""
    content = message.get("content")
    if not content or content[0].get("type") != TEXT:
        return message
    splitter = ThinkTagSplitter()
    pieces = splitter.feed(content[0]["text"]) + splitter.end()
    blocks: list[dict[str, Any]] = []
    for kind, text in pieces:
        if blocks and blocks[-1]["type"] == kind:
            blocks[-1][kind] += text
        elif kind == THINKING:
            blocks.append({"type": THINKING, "thinking": text, "signature": ""})
        else:
            blocks.append({"type": TEXT, "text": text})
    return {**message, "content": blocks + content[1:]}
