"""The usage line built from cached pieces says what the generic JSON line says, redacted the same; log batches are
written on time, on size and at once for warnings."""

from __future__ import annotations

import asyncio
import json
import logging
import logging.handlers
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccproxy.context import REQUEST_ID
from ccproxy.core._twins import Core, load_core
from ccproxy.default_plugins.usage import USAGE_MESSAGE, UsageObserver, usage_fields
from ccproxy.events import RequestRecord
from ccproxy.logs import FLUSH_AT_BYTES, FLUSH_DELAY_SECONDS, DirectLines, JsonFormatter, build_handlers
from ccproxy.redaction import REDACTED, Redactor
from ccproxy.settings import Settings
from ccproxy.usage import UsageTotals
from ccproxy.usage_line import MAX_PIECES, UsageLines

SECRET = "sk-upstream-secret-0123456789"


@pytest.fixture
def logger(tmp_path: Path) -> Iterator[logging.Logger]:
    """A logger with only the handlers configure_logging builds for JSON lines to stderr (here a file) and a log
    file. Set when the test runs: pytest attaches its capturing handler to non-propagating loggers first."""
    made = logging.getLogger(f"ccproxy-test-usage-line-{tmp_path.name}")
    made.propagate = False
    made.setLevel(logging.INFO)
    yield made
    for handler in made.handlers:
        handler.close()
    made.handlers.clear()


def json_handlers(logger: logging.Logger, tmp_path: Path) -> None:
    settings = Settings(log_file_path=str(tmp_path / "log.jsonl"), log_format="json")
    logger.handlers[:] = build_handlers(settings, Redactor([SECRET]))


def records() -> list[RequestRecord]:
    plain = RequestRecord(request_id="req_0123456789abcdef01234567", key_id="key_0badcafe", client_model="claude-x")
    plain.backend, plain.upstream_model, plain.input_tokens, plain.output_tokens = "default", "gpt-5", 1419, 187
    plain.cache_read_tokens, plain.cost_usd, plain.total_ms = 12800, 0.00524375, 25.123
    odd = RequestRecord(request_id="req_ffff", client_model=f'modèle "quoted" \\ {SECRET}', endpoint="count_tokens")
    odd.status, odd.error_type, odd.stream, odd.ttft_ms, odd.total_ms = 529, "overloaded_error", True, 1.005, 0.0
    odd.cost_usd, odd.retries, odd.fallbacks, odd.cache_write_tokens = 1e-9, 2, 1, 7
    broken = RequestRecord(request_id="req_nan", client_model="m", upstream_model=f"x-{SECRET}-y")
    broken.cost_usd, broken.total_ms = float("nan"), float("inf")
    return [plain, odd, broken]


def generic_line(logger: logging.Logger, record: RequestRecord) -> dict[str, Any]:
    """What the JsonFormatter writes for the record's fields after the handlers' redaction."""
    entry = logger.makeRecord(logger.name, logging.INFO, "", 0, USAGE_MESSAGE, (), None)
    entry.fields = usage_fields(record)
    logger.handlers[0].filters[0].filter(entry)  # type: ignore[union-attr]  # the RedactingFilter
    token = REQUEST_ID.set(record.request_id)
    try:
        return dict(json.loads(JsonFormatter().format(entry)))
    finally:
        REQUEST_ID.reset(token)


@pytest.mark.parametrize("batched", [False, True])
def test_the_cached_line_says_what_the_generic_line_says(logger: logging.Logger, tmp_path: Path, batched: bool) -> None:
    json_handlers(logger, tmp_path)
    lines = UsageLines(logger, USAGE_MESSAGE)
    if batched:  # one block for all (what a batch of the deferred usage observer writes)
        assert lines.write_all(records()) and lines.write_all(records())
    for record in [] if batched else records() * 2:  # the second time from the cached pieces
        assert lines.write(record)
    for handler in logger.handlers:
        handler.flush()
    written = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(written) == 6
    for line, record in zip(written, records() * 2, strict=True):
        expected = generic_line(logger, record)
        if record.request_id == "req_nan":  # JSON has no NaN or infinity: the generic line would not even parse
            expected["cost_usd"] = expected["total_ms"] = None
        assert {k: v for k, v in line.items() if k != "time"} == {k: v for k, v in expected.items() if k != "time"}
        assert line["time"].endswith("Z") and len(line["time"]) == len("2026-11-30T02:07:41.252Z")
    assert SECRET not in (tmp_path / "log.jsonl").read_text()
    assert written[1]["client_model"] == f'modèle "quoted" \\ {REDACTED}'


def test_fixed_decimals_give_the_numbers_round_gives() -> None:
    """The cached line writes floats with a fixed number of decimals, the generic line writes `round`'s result: the
    same numbers, half-way cases and large and tiny values included."""
    rng = random.Random(11)
    values = [rng.uniform(0, 10.0**power) for power in range(-9, 10) for _ in range(300)]
    values += [0.125, 0.375, 2.675, 1.005, 0.005, 5e-9, 1e-12, 123456789.125, 0.0]
    for value in values:
        assert float(f"{value:.2f}") == round(value, 2), value
        assert float(f"{value:.8f}") == round(value, 8), value


def test_a_handler_of_someone_elses_gets_a_record_instead(logger: logging.Logger, tmp_path: Path) -> None:
    json_handlers(logger, tmp_path)
    observer = UsageObserver(UsageTotals())
    observer.lines = UsageLines(logger, USAGE_MESSAGE)
    assert observer.lines.write(records()[0])
    other = logging.handlers.BufferingHandler(10)
    logger.addHandler(other)  # the route is worked out again: the handlers changed
    assert not observer.lines.write(records()[0])
    logger.removeHandler(other)
    assert observer.lines.write(records()[0])


def test_direct_lines_need_one_redacting_filter_on_every_handler(logger: logging.Logger, tmp_path: Path) -> None:
    json_handlers(logger, tmp_path)
    direct = DirectLines(logger)
    assert direct.route() == tuple(logger.handlers)
    settings = Settings(log_format="json")
    stranger = build_handlers(settings, Redactor(["sk-another-secret-0123456789"]))[0]
    logger.addHandler(stranger)
    try:
        assert direct.route() is None  # two redactors: one line cannot be redacted for both
    finally:
        logger.removeHandler(stranger)
        stranger.close()
    assert direct.route() == tuple(logger.handlers)


def test_distinct_pieces_are_bounded(logger: logging.Logger, tmp_path: Path) -> None:
    json_handlers(logger, tmp_path)
    lines = UsageLines(logger, USAGE_MESSAGE)
    redacting = lines.direct.route() and lines.direct.redacting
    assert redacting
    for number in range(MAX_PIECES + 50):
        record = records()[0]
        record.client_model = f"model-{number}"
        assert json.loads(lines.line(record, redacting))["client_model"] == f"model-{number}"
    assert len(lines._pieces) == MAX_PIECES


async def test_info_lines_are_written_after_the_delay_warnings_at_once(logger: logging.Logger, tmp_path: Path) -> None:
    json_handlers(logger, tmp_path)
    log_file = tmp_path / "log.jsonl"
    logger.info("first")
    logger.info("second")
    await asyncio.sleep(0)
    assert log_file.read_text() == ""  # batched
    await asyncio.sleep(FLUSH_DELAY_SECONDS * 3)
    assert [json.loads(line)["message"] for line in log_file.read_text().splitlines()] == ["first", "second"]
    logger.info("third")
    logger.warning("trouble")  # written at once, after what waited
    assert [json.loads(line)["message"] for line in log_file.read_text().splitlines()][2:] == ["third", "trouble"]


async def test_a_full_batch_is_written_without_waiting(logger: logging.Logger, tmp_path: Path) -> None:
    json_handlers(logger, tmp_path)
    padding = "x" * 1000
    count = FLUSH_AT_BYTES // 1000 + 2
    for number in range(count):
        logger.info("%d %s", number, padding)
    written = (tmp_path / "log.jsonl").read_text().splitlines()
    assert 0 < len(written) < count  # the first full batch went out; the rest waits for the delay


def test_a_batch_is_written_on_time_in_a_later_event_loop_too(logger: logging.Logger, tmp_path: Path) -> None:
    """A server restarted in the same process runs a new loop: the first loop's pending timer never fires there."""
    json_handlers(logger, tmp_path)
    log_file = tmp_path / "log.jsonl"

    async def log_and_leave() -> None:
        logger.info("first loop")  # its timer is left behind when this loop closes

    async def log_and_wait() -> list[str]:
        logger.info("second loop")
        await asyncio.sleep(FLUSH_DELAY_SECONDS * 3)
        return [json.loads(line)["message"] for line in log_file.read_text().splitlines()]

    asyncio.run(log_and_leave())
    assert asyncio.run(log_and_wait()) == ["first loop", "second loop"]


# ------------------------------------------------------------------------------------------ the two twins


START = '{"time":"2026-12-01T00:00:00.000Z","pid":1,"request_id":'


def reference() -> Core:
    """The pure twin: what the compiled `usage_block` must write byte for byte."""
    return load_core("py")


def block(core: Core, records: list[RequestRecord], start: str = START) -> bytes:
    pieces: dict[Any, str] = {}

    def piece_of(key: Any) -> str:
        pieces[key] = piece = ",".join(f'"f{number}":{json.dumps(value)}' for number, value in enumerate(key))
        return piece

    made: bytes = core.usageline.usage_block(records, start, pieces, piece_of)
    return made


TEXT = st.none() | st.text(max_size=12)  # any code point, lone surrogates included
COUNT = st.integers(min_value=-(2**70), max_value=2**70)
FLOAT = st.none() | st.floats() | st.floats(min_value=0, max_value=1e16) | st.integers(-(10**6), 10**6)


@st.composite
def any_records(draw: st.DrawFn) -> list[RequestRecord]:
    made = []
    for _ in range(draw(st.integers(1, 4))):
        record = RequestRecord(draw(st.text(max_size=30)), draw(TEXT), draw(st.text(max_size=12)), draw(TEXT))
        record.upstream_model, record.error_type = draw(TEXT), draw(TEXT)
        record.status, record.stream = draw(COUNT), draw(st.booleans())
        record.input_tokens, record.output_tokens = draw(COUNT), draw(COUNT)
        record.cache_read_tokens, record.cache_write_tokens = draw(COUNT), draw(COUNT)
        record.cost_usd, record.ttft_ms = draw(FLOAT), draw(FLOAT)
        record.total_ms = draw(st.floats() | st.floats(min_value=0, max_value=1e7))
        record.retries, record.fallbacks = draw(COUNT), draw(COUNT)
        record.endpoint = draw(st.sampled_from(["messages", "count_tokens"]))
        if made and draw(st.booleans()):  # the same texts as the record before, as equal copies or the same objects
            before, copies = made[-1], draw(st.booleans())
            for name in ("endpoint", "key_id", "client_model", "backend", "upstream_model", "error_type"):
                value = getattr(before, name)
                setattr(record, name, (value + "~")[:-1] if copies and isinstance(value, str) else value)
        made.append(record)
    return made


@settings(max_examples=300, deadline=None)
@given(records=any_records(), start=st.sampled_from([START, "{é\ud800:"]))
def test_both_twins_write_the_same_bytes_for_any_record(core: Core, records: list[RequestRecord], start: str) -> None:
    assert block(core, records, start) == block(reference(), records, start)


def fixed_decimal_values() -> list[float]:
    """Floats where writing a fixed number of decimals is easy to get wrong: exact and near halves at both scales,
    carries into the next digit, the largest scaled values, tiny and negative ones."""
    values = [0.0, -0.0, 5e-324, 1e-9, 0.005, 0.015, 0.125, 0.375, 2.675, 1.005, 9.995, 99.995, 0.999999995]
    values += [5e-9, 1.5e-8, 2.5e-8, 0.123456785, 1e13 - 0.005, 9999999999999.995, 1e14, 1e15, 1e16, 1e300]
    for whole in (0, 1, 7, 12345, 10**9):
        for hundredths in range(0, 100, 7):
            half = whole + (hundredths + 0.5) / 100
            values += [half, math.nextafter(half, 0), math.nextafter(half, math.inf)]
        for units in range(0, 10**8, 9_999_991):
            half = whole + (units + 0.5) / 10**8
            values += [half, math.nextafter(half, 0), math.nextafter(half, math.inf)]
    return values + [-value for value in values]


def test_both_twins_write_fixed_decimals_as_format_does(core: Core) -> None:
    records = []
    for value in fixed_decimal_values():
        record = RequestRecord("req_x", client_model="m")
        record.cost_usd = record.ttft_ms = record.total_ms = value
        records.append(record)
    lines = block(core, records).decode().splitlines()
    for line, value in zip(lines, fixed_decimal_values(), strict=True):
        assert f'"cost_usd":{value:.8f},"ttft_ms":{value:.2f},"total_ms":{value:.2f},' in line, value


def test_both_twins_read_a_subclass_and_an_unset_field_as_python_does(core: Core) -> None:
    class Tagged(RequestRecord):
        __slots__ = ()

        @property
        def status(self) -> int:  # type: ignore[override]  # a fixed view for this test
            return 418

        @status.setter
        def status(self, value: int) -> None:
            pass

    tagged = Tagged("req_sub", client_model="m")
    assert b'"status":418,' in block(core, [tagged]) == block(reference(), [tagged])
    unset = RequestRecord.__new__(RequestRecord)
    with pytest.raises(AttributeError):
        block(core, [unset])


def test_both_twins_escape_the_request_id_as_json(core: Core) -> None:
    for request_id in ['req_"quoted"', "req_\\", "req_\x00\x1f\x7f", "req_é", "req_\ud83d"]:
        record = RequestRecord(request_id, client_model="m")
        line = block(core, [record])
        assert line == block(reference(), [record])
        assert json.loads(line.decode("utf-8", "surrogateescape").replace("\\udc", "\\\\udc"))


def test_both_twins_take_each_records_own_piece_in_a_block(core: Core) -> None:
    """Records in a row that differ in one repeating field only (same lengths, an equal number, None) each get
    their own texts: a piece is reused only for the same texts."""
    records = []
    for name, values in [
        ("client_model", ["aa", "ab", "ab", "aa"]),
        ("key_id", [None, "k", None, "k"]),
        ("error_type", ["x", "y", "x", "x"]),
    ]:
        for value in values:
            record = RequestRecord("req_x", client_model="m")
            setattr(record, name, value)
            records.append(record)
    lines = block(core, records).decode().splitlines()
    fields = [f"{name}" for name in ("client_model",) * 4 + ("key_id",) * 4 + ("error_type",) * 4]
    values = ["aa", "ab", "ab", "aa", None, "k", None, "k", "x", "y", "x", "x"]
    numbers = {"client_model": 2, "key_id": 1, "error_type": 5}
    for line, name, value in zip(lines, fields, values, strict=True):
        assert f'"f{numbers[name]}":{json.dumps(value)}' in line, (name, value, line)
