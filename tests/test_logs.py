"""Log lines: JSON or text, request ids, fields, redaction on every handler, files rotated by size."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccproxy.context import REQUEST_ID
from ccproxy.logs import (
    FLUSH_DELAY_SECONDS,
    JsonFormatter,
    RotatingLogFile,
    TextFormatter,
    build_handlers,
    configure_logging,
    log_fields,
    log_format,
)
from ccproxy.redaction import REDACTED, Redactor
from ccproxy.settings import Settings

SECRET = "sk-upstream-secret-0123456789"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def record(message: str = "hello", **fields: Any) -> logging.LogRecord:
    entry = logging.LogRecord("ccproxy.test", logging.INFO, "", 0, message, (), None)
    if fields:
        entry.fields = fields
    return entry


@pytest.fixture
def request_id() -> Iterator[str]:
    token = REQUEST_ID.set("req_abc")
    yield "req_abc"
    REQUEST_ID.reset(token)


def test_format_is_json_unless_stderr_is_a_terminal_or_chosen() -> None:
    assert log_format(Settings(), io.StringIO()) == "json"
    assert log_format(Settings(), Tty()) == "text"
    assert log_format(Settings(log_format="JSON"), Tty()) == "json"
    assert log_format(Settings(log_format="text"), io.StringIO()) == "text"


def test_json_lines_carry_time_level_logger_request_id_and_fields(request_id: str) -> None:
    line = json.loads(JsonFormatter().format(record("done", status=200, cost_usd=0.5)))
    assert line["level"] == "INFO" and line["logger"] == "ccproxy.test" and line["message"] == "done"
    assert line["request_id"] == request_id and line["status"] == 200 and line["cost_usd"] == 0.5
    assert line["time"].endswith("Z") and "T" in line["time"]


def test_json_lines_hold_exceptions_as_text() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        entry = logging.LogRecord("ccproxy", logging.ERROR, "", 0, "failed", (), sys.exc_info())
    line = json.loads(JsonFormatter().format(entry))
    assert "ValueError: boom" in line["exception"] and "\n" not in JsonFormatter().format(entry)


def test_text_lines_append_the_request_id_and_fields(request_id: str) -> None:
    text = TextFormatter().format(record("done", status=200, error_type=None, cost_usd=0.25))
    assert text.endswith(f"INFO ccproxy.test: done [{request_id}] status=200 cost_usd=0.250000")


def test_every_handler_redacts_message_and_fields(tmp_path: Path) -> None:
    settings = Settings(log_file_path=str(tmp_path / "log.jsonl"), error_log_file_path=str(tmp_path / "error.jsonl"))
    handlers = build_handlers(settings, Redactor([SECRET]))
    assert len(handlers) == 3 and all(handler.filters for handler in handlers)
    entry = logging.LogRecord("ccproxy", logging.WARNING, "", 0, "upstream said %s", (SECRET,), None)
    entry.fields = {"client_model": f"model-{SECRET}", "status": 401}
    for handler in handlers[1:]:
        handler.handle(entry)
        handler.close()
    for name in ("log.jsonl", "error.jsonl"):
        text = (tmp_path / name).read_text()
        assert SECRET not in text and REDACTED in text
        assert json.loads(text)["client_model"] == f"model-{REDACTED}"


def test_the_error_file_gets_warnings_and_up_only(tmp_path: Path) -> None:
    settings = Settings(error_log_file_path=str(tmp_path / "error.jsonl"), log_format="text")
    logger = logging.getLogger("ccproxy")
    saved = logger.handlers[:], logger.level, logger.propagate
    try:
        configure_logging(settings, Redactor([]))
        logging.getLogger("ccproxy.x").info("routine")
        logging.getLogger("ccproxy.x").warning("trouble")
    finally:
        for handler in logger.handlers:
            handler.close()
        logger.handlers[:], logger.level, logger.propagate = saved
    lines = [json.loads(line) for line in (tmp_path / "error.jsonl").read_text().splitlines()]
    assert [line["message"] for line in lines] == ["trouble"]


def test_files_rotate_by_size_keeping_the_backups(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    handler = RotatingLogFile(str(path), max_bytes=1000, backups=2)
    handler.setFormatter(JsonFormatter())
    for number in range(60):
        handler.handle(record(f"line {number:02d} " + "x" * 40))
    handler.close()
    files = [path, tmp_path / "log.jsonl.1", tmp_path / "log.jsonl.2"]
    assert all(file.exists() for file in files) and not (tmp_path / "log.jsonl.3").exists()
    assert all(file.stat().st_size <= 1000 for file in files)
    kept = [json.loads(line)["message"] for file in reversed(files) for line in file.read_text().splitlines()]
    assert kept == sorted(kept) and kept[-1].startswith("line 59")  # the newest lines, in order, none torn


def test_two_writers_rotate_once_and_follow_the_new_file(tmp_path: Path) -> None:
    """Two handlers on one path stand for two worker processes."""
    path = tmp_path / "log.jsonl"
    first, second = RotatingLogFile(str(path), 2000, 3), RotatingLogFile(str(path), 2000, 3)
    for handler in (first, second):
        handler.setFormatter(JsonFormatter())
    for number in range(80):
        (first if number % 2 else second).handle(record(f"line {number:02d} " + "y" * 30))
    for handler in (first, second):
        handler.close()
    lines = [
        json.loads(line)["message"]
        for file in sorted(tmp_path.glob("log.jsonl*"))
        if not file.name.endswith(".lock")
        for line in file.read_text().splitlines()
    ]
    assert sorted(lines) == sorted(f"line {n:02d} " + "y" * 30 for n in range(80))[-len(lines) :]
    assert len(lines) >= 60  # at most the oldest backup fell off


def test_fields_lines_go_straight_to_json_handlers_and_as_records_to_others(tmp_path: Path, request_id: str) -> None:
    settings = Settings(log_file_path=str(tmp_path / "log.jsonl"), log_format="json")
    logger = logging.getLogger("ccproxy-test-fields")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers[:] = build_handlers(settings, Redactor([SECRET]))
    other = logging.handlers.BufferingHandler(10)  # a handler of someone else's: it gets a record
    logger.addHandler(other)
    made: list[dict[str, Any]] = []

    def make_record(fields: dict[str, Any]) -> logging.LogRecord:
        made.append(fields)
        entry = record("request")
        entry.fields = fields
        return entry

    try:
        log_fields(logger, "request", {"client_model": f"m-{SECRET}", "status": 200}, make_record)
        seen_by_other = list(other.buffer)
    finally:
        for handler in logger.handlers:
            handler.close()
        logger.handlers.clear()
    line = json.loads((tmp_path / "log.jsonl").read_text())
    assert line["client_model"] == f"m-{REDACTED}" and line["status"] == 200
    assert (line["level"], line["logger"], line["message"], line["request_id"]) == (
        "INFO",
        "ccproxy-test-fields",
        "request",
        request_id,
    )
    expected = json.loads(JsonFormatter().format(record("request", client_model=f"m-{REDACTED}", status=200)))
    assert set(line) == set(expected)
    assert len(made) == 1 and len(seen_by_other) == 1  # the record went only where a line could not


async def test_info_lines_on_the_loop_are_written_together_later_and_a_warning_at_once(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    handler = RotatingLogFile(str(path), max_bytes=0, backups=0)
    handler.setFormatter(TextFormatter())
    try:
        handler.handle(record("first"))
        handler.handle(record("second"))
        assert path.read_text() == ""  # batched: FLUSH_DELAY_SECONDS on this loop
        await asyncio.sleep(FLUSH_DELAY_SECONDS * 3)
        assert [line.split()[-1] for line in path.read_text().splitlines()] == ["first", "second"]
        handler.handle(record("third"))
        warning = record("careful")
        warning.levelno, warning.levelname = logging.WARNING, "WARNING"
        handler.handle(warning)  # written at once, after what waited before it
        assert [line.split()[-1] for line in path.read_text().splitlines()] == ["first", "second", "third", "careful"]
    finally:
        handler.close()


def test_info_lines_outside_a_loop_are_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    handler = RotatingLogFile(str(path), max_bytes=0, backups=0)
    handler.setFormatter(TextFormatter())
    try:
        handler.handle(record("start-up"))
        assert path.read_text().split()[-1] == "start-up"
    finally:
        handler.close()
