"""count_tokens on a huge body (issue 11 item 7): a text over EXACT_CHARS is estimated from a sample, so one 30 MB
body no longer costs seconds of CPU and a token list of its own size — and the estimate stays close."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ccproxy.tokens import EXACT_CHARS, SAMPLE_SLICES, SLICE_CHARS, TokenCounter

WORDS = ("the", "proxy", "tokens", "def", "return", "{", "}", "x = 1;", "naïve", "日本語", "stream", "server")


class CountingEncoding:
    """The real encoding, counting the characters it is asked to encode."""

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding
        self.name = encoding.name
        self.encoded = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.encoded += len(text)
        result: list[int] = self.encoding.encode_ordinary(text)
        return result


@pytest.fixture(scope="module")
def real() -> TokenCounter:
    return TokenCounter.load()


def text_of(characters: int) -> str:
    chooser = random.Random(7)
    words: list[str] = []
    size = 0
    while size < characters:
        word = chooser.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:characters]


def test_a_huge_text_is_estimated_from_a_bounded_sample(real: TokenCounter) -> None:
    text = text_of(8 * EXACT_CHARS)
    spy = CountingEncoding(real._encoding)
    estimate = TokenCounter(spy).count_text(text)  # type: ignore[arg-type]  # the spy quacks like an Encoding
    assert spy.encoded <= SAMPLE_SLICES * SLICE_CHARS  # ~1 MB of 8 MB encoded
    exact = len(real._encoding.encode_ordinary(text))
    assert abs(estimate - exact) / exact < 0.02, (estimate, exact)


def test_a_text_up_to_the_limit_is_counted_exactly(real: TokenCounter) -> None:
    text = text_of(EXACT_CHARS)
    assert real.count_text(text) == len(real._encoding.encode_ordinary(text))


def test_a_huge_count_tokens_body_is_estimated_too(real: TokenCounter) -> None:
    text = text_of(3 * EXACT_CHARS)
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": text}]}
    exact = len(real._encoding.encode_ordinary(text))
    assert abs(real.count_request(body) - exact) / exact < 0.02
