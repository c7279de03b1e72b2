"""Matching: the built-in detectors, and streamed text redacted exactly as the whole text, holding back only what
a match in progress needs."""

from __future__ import annotations

import pytest
import regex
from guardrails_support import AWS_KEY_ID, AWS_SECRET, SECRETS, pieces_of
from hypothesis import given, settings
from hypothesis import strategies as st

from ccproxy_guardrails.detectors import GROUPS, expand
from ccproxy_guardrails.matcher import Matcher, StreamRedactor, compile_pattern
from ccproxy_guardrails.rules import detector_patterns

R = "[REDACTED]"


def matcher(*patterns: str, detectors: tuple[str, ...] = ("secrets",), timeout: float = 1.0) -> Matcher:
    compiled = detector_patterns(list(detectors))
    compiled += [compile_pattern(pattern, f"patterns[{i}]", timeout=timeout) for i, pattern in enumerate(patterns)]
    return Matcher(compiled)


SECRET_MATCHER = matcher()
ALL_MATCHER = matcher(r"(?i)project\s+falcon", detectors=("secrets", "email", "phone"))


def streamed(m: Matcher, pieces: list[str], max_hold: int = 16384) -> tuple[str, StreamRedactor]:
    redactor = StreamRedactor(m, R, max_hold)
    out = "".join(redactor.feed(piece) for piece in pieces) + redactor.finish()
    return out, redactor


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_each_secret_detector_finds_its_vendor(name: str) -> None:
    found = SECRET_MATCHER.redact(f"here: {SECRETS[name]} (done)", R)
    assert found is not None and found.text == f"here: {R} (done)"
    assert found.labels == {name}


def test_aws_secret_keys_are_found_next_to_a_key_id_or_a_label_only() -> None:
    near_id = SECRET_MATCHER.redact(f"id {AWS_KEY_ID}\nsecret: {AWS_SECRET}", R)
    assert near_id is not None and near_id.text == f"id {R}\nsecret: {R}"
    labelled = SECRET_MATCHER.redact(f"aws_secret_access_key = {AWS_SECRET}", R)
    assert labelled is not None and labelled.labels == {"aws_secret"}
    assert SECRET_MATCHER.redact(f"a checksum {AWS_SECRET} alone", R) is None


@pytest.mark.parametrize(
    "text",
    [
        "sk-learn-compatible-estimators-for-everyone",  # kebab-case, no digit
        "the task-sk-abc is done",
        "ghp_short",
        "AKIA1234",
        "call 2024-01-15 at 10.20.30",
        "version 1.2.3.4 and 192.168.0.1",
        "user at example dot com",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert ALL_MATCHER.redact(text, R) is None


def test_email_and_phone_are_opt_in() -> None:
    text = "mail bob.smith+ci@example.co.uk or call +1 415 555 0134 / (415) 555-0134"
    assert SECRET_MATCHER.redact(text, R) is None
    found = ALL_MATCHER.redact(text, R)
    assert found is not None and found.text == f"mail {R} or call {R} / {R}"
    assert found.labels == {"email", "phone"}


def test_a_private_key_without_its_end_line_is_redacted_to_the_end() -> None:
    found = SECRET_MATCHER.redact("key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\nAAAA", R)
    assert found is not None and found.text == f"key:\n{R}"


def test_overlapping_and_touching_matches_become_one_replacement() -> None:
    m = matcher("abc", "bcd", "def", detectors=())
    found = m.redact("xx abcdef yy abc", R)
    assert found is not None and (found.text, found.count) == (f"xx {R} yy {R}", 2)
    assert found.labels == {"patterns[0]", "patterns[1]", "patterns[2]"}


def test_groups_and_backreferences_of_user_patterns_keep_their_meaning() -> None:
    m = matcher(r"(\w)\1\1", r"(?P<word>ab)(?P=word)", detectors=())
    found = m.redact("aaa abab abc", R)
    assert found is not None and found.text == f"{R} {R} abc"


def test_a_secret_group_limits_what_is_replaced() -> None:
    m = matcher(r"password\s*=\s*(?P<secret>\S+)", detectors=())
    text = "set password = hunter2!! now, password=x"
    found = m.redact(text, R)
    assert found is not None and found.text == f"set password = {R} now, password={R}"
    for cut in range(1, len(text)):
        assert streamed(m, [text[:cut], text[cut:]])[0] == found.text


def test_aws_secret_labels_in_three_spellings() -> None:
    for label in ("aws_secret_access_key = ", '"SecretAccessKey": "', "AWS_SECRET_ACCESS_KEY="):
        found = SECRET_MATCHER.redact(label + AWS_SECRET, R)
        assert found is not None and found.text == label + R


def test_detector_groups_expand_and_unknown_names_are_refused() -> None:
    assert expand(["aws"]) == list(GROUPS["aws"])
    assert "email" not in expand(["secrets"])
    with pytest.raises(ValueError, match="unknown detector 'passwords'"):
        expand(["passwords"])


@pytest.mark.parametrize(("pattern", "problem"), [("(unclosed", "invalid regular expression"), ("a*", "empty")])
def test_bad_patterns_are_refused(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        compile_pattern(pattern, "patterns[0]")


def test_a_verbose_pattern_with_a_trailing_comment_works_streamed() -> None:
    m = matcher("(?x) falcon  # the code name", detectors=())
    out, _ = streamed(m, ["the fal", "con flies"])
    assert out == f"the {R} flies"


# -- streaming ------------------------------------------------------------------------------------------------

SAMPLE = (
    f"Use {SECRETS['openai']} here; mail bob@example.com, call +1 415 555 0134. Project  Falcon!\n"
    f"{AWS_KEY_ID} secret {AWS_SECRET} and {SECRETS['private_key']}\nend {SECRETS['jwt']}."
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(SAMPLE) - 1), max_size=60))
def test_streamed_text_is_redacted_exactly_like_the_whole_text(cuts: list[int]) -> None:
    whole = ALL_MATCHER.redact(SAMPLE, R)
    assert whole is not None
    out, redactor = streamed(ALL_MATCHER, pieces_of(SAMPLE, cuts))
    assert out == whole.text
    assert (redactor.count, redactor.labels) == (whole.count, whole.labels)


ALPHABET = "sk-proj_AKIA0123456789abcXYZ@.+ -\n=/"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=300), st.lists(st.integers(min_value=1, max_value=299), max_size=30))
def test_any_text_in_any_pieces_streams_like_the_whole(text: str, cuts: list[int]) -> None:
    text = text + SECRETS["openai"] + text[::-1]
    whole = ALL_MATCHER.redact(text, R)
    out, _ = streamed(ALL_MATCHER, pieces_of(text, [cut for cut in cuts if cut < len(text)]))
    assert out == (whole.text if whole else text)


def test_every_split_of_a_secret_across_two_pieces_is_caught() -> None:
    text = f"token={SECRETS['github']};"
    for cut in range(1, len(text)):
        assert streamed(SECRET_MATCHER, [text[:cut], text[cut:]])[0] == f"token={R};"


def test_text_that_cannot_start_a_match_is_released_at_once() -> None:
    redactor = StreamRedactor(SECRET_MATCHER, R, 16384)
    assert redactor.feed("Hello, world. ") == "Hello, world. "
    assert redactor.feed("The answer is 42.") == "The answer is 42."


def test_only_a_possible_match_in_progress_is_held() -> None:
    redactor = StreamRedactor(SECRET_MATCHER, R, 16384)
    assert redactor.feed("your key is sk") == "your key is "  # `sk` could begin a key
    assert redactor.feed("y blue.") == "sky blue."  # it did not
    assert redactor.feed(" sk-proj-") == " "
    assert redactor.feed("Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z") == ""  # 32 characters: a key, unless more follow
    assert redactor.feed("99 ok") == f"{R} ok"
    assert redactor.finish() == ""
    assert redactor.count == 1


def test_a_match_in_progress_is_held_at_most_max_hold_and_then_replaced() -> None:
    m = matcher(r"BEGIN[\s\S]*?END", detectors=())
    redactor = StreamRedactor(m, R, max_hold=50)
    assert redactor.feed("a BEGIN ") == "a "
    out = ""
    for _ in range(10):
        out += redactor.feed("x" * 10)
        assert len(redactor.held()) <= 50
    # Held past 50 characters: what was held is replaced (not leaked), and matching starts afresh after it.
    assert out.startswith(R) and "BEGIN" not in out
    assert out + redactor.feed(" END") + redactor.finish() == R + "x" * (len(out) - len(R)) + " END"


def test_lookbehinds_see_text_already_released() -> None:
    m = matcher(r"(?<=password: )\w+", detectors=())
    out, _ = streamed(m, ["the password", ": ", "hunter2", " ok"])
    assert out == f"the password: {R} ok"


def test_a_catastrophic_pattern_times_out_instead_of_stalling() -> None:
    m = matcher(r"(a|aa)+$", detectors=(), timeout=0.05)
    with pytest.raises(TimeoutError):
        m.redact("a" * 60 + "!", R)
    redactor = StreamRedactor(m, R, 16384)
    with pytest.raises(TimeoutError):
        redactor.feed("a" * 60 + "!")
    assert redactor.held() == ""  # a failed call changes nothing: the text is still the caller's


def test_held_is_exactly_what_was_not_released() -> None:
    redactor = StreamRedactor(SECRET_MATCHER, R, 16384)
    assert redactor.feed("see sk-pro") == "see "
    assert redactor.held() == "sk-pro"


def test_regex_is_the_module_in_use() -> None:
    # Partial matching is what keeps the hold minimal; the stdlib `re` has none.
    assert isinstance(SECRET_MATCHER.patterns[0].compiled, regex.Pattern)
