"""GET /v1/usage across a server's workers: each worker's sums in its own file, read as one (ccproxy.usage)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ccproxy.cli import metrics_dir_for_workers
from ccproxy.settings import Settings
from ccproxy.usage import UsageTotals, WorkerFiles
from ccproxy.worker_files import clean
from tests.support.shared_usage import Wall, done, one_day_is_read_alone, two_processes_read_as_one


def pair(directory: Path) -> tuple[WorkerFiles, WorkerFiles]:
    return WorkerFiles(str(directory), pid=101), WorkerFiles(str(directory), pid=102)


async def test_two_workers_read_as_one(tmp_path: Path) -> None:
    await two_processes_read_as_one(*pair(tmp_path))


async def test_one_day_is_read_alone(tmp_path: Path) -> None:
    await one_day_is_read_alone(*pair(tmp_path))


async def test_a_workers_own_rows_are_read_live_not_from_its_file(tmp_path: Path) -> None:
    first, _ = pair(tmp_path)
    totals = UsageTotals(Wall())
    totals.add_all([done("key_a", "gpt-5", 1, 1, None)])
    await first.publish(totals)
    totals.add_all([done("key_a", "gpt-5", 1, 1, None)])  # not published yet
    rows, _ = await first.read(totals)
    assert [row[0] for row in rows.values()] == [2.0]


async def test_a_file_is_replaced_whole_and_a_broken_one_is_skipped(tmp_path: Path) -> None:
    first, second = pair(tmp_path)
    totals = UsageTotals(Wall())
    totals.add_all([done("key_a", "gpt-5", 3, 1, None)])
    await first.publish(totals)
    assert os.listdir(tmp_path) == [os.path.basename(first.path)]  # no temporary file left beside it
    assert json.loads(Path(first.path).read_text())["rows"][0][:5] == [
        *next(iter(totals.rows)),
        1.0,
        0.0,
    ]
    (tmp_path / "usage_103-000000aa.json").write_text('{"rows": [[1, 2')  # a worker that died writing (or not ours)
    (tmp_path / "usage_104-000000bb.json").write_text('{"since": 0, "rows": [["x", "y"]]}')
    rows, _ = await second.read(UsageTotals(Wall()))
    assert [row[0] for row in rows.values()] == [1.0]


async def test_publishing_writes_only_when_something_changed(tmp_path: Path) -> None:
    first, _ = pair(tmp_path)
    totals = UsageTotals(Wall())
    await first.publish(totals)  # the first publish writes even nothing: the worker is known to the others
    written = Path(first.path).stat().st_mtime_ns
    os.utime(first.path, ns=(0, 0))
    await first.publish(totals)
    assert Path(first.path).stat().st_mtime_ns == 0 != written
    totals.add_all([done("key_a", "gpt-5", 3, 1, None)])
    await first.publish(totals)
    assert Path(first.path).stat().st_mtime_ns != 0


async def test_a_write_that_fails_is_written_again_by_the_next_publish(tmp_path: Path) -> None:
    first, second = pair(tmp_path)
    totals = UsageTotals(Wall())
    await first.publish(totals)
    totals.add_all([done("key_a", "gpt-5", 3, 1, None)])
    os.mkdir(first.path + ".tmp")  # where the file would be written: the write fails (as on a full disk)
    with pytest.raises(OSError):
        await first.publish(totals)
    os.rmdir(first.path + ".tmp")
    await first.publish(totals)  # nothing new since, but the failed write is made up for
    rows, _ = await second.read(UsageTotals(Wall()))
    assert [row[0] for row in rows.values()] == [1.0]
    assert len(os.listdir(tmp_path)) == 1  # no temporary file left behind


async def test_a_model_name_with_any_text_survives_the_file(tmp_path: Path) -> None:
    first, second = pair(tmp_path)
    totals = UsageTotals(Wall())
    totals.add_all([done("team|a", 'a\ud800b|\n"c', 1, 1, None)])  # a lone surrogate, separators, quotes
    await first.publish(totals)
    rows, _ = await second.read(UsageTotals(Wall()))
    assert [row_key[1:] for row_key in rows] == [("team|a", 'a\ud800b|\n"c')]


@pytest.mark.parametrize("workers", [1, 2])
def test_ccproxy_serve_empties_the_named_directory_whatever_its_workers(tmp_path: Path, workers: int) -> None:
    """A previous run's files would count again in GET /v1/usage (and /metrics)."""
    (tmp_path / "usage_1-000000ab.json").write_text("{}")
    (tmp_path / "counter_1.db").write_text("")
    settings = Settings(api_key="sk-test", workers=workers, metrics_dir=str(tmp_path))
    assert metrics_dir_for_workers(settings) == (settings, None)
    assert os.listdir(tmp_path) == []


def test_several_workers_without_a_named_directory_get_a_fresh_one() -> None:
    settings, made = metrics_dir_for_workers(Settings(api_key="sk-test", workers=2))
    try:
        assert made is not None and settings.metrics_dir == made and os.listdir(made) == []
    finally:
        if made is not None:
            os.rmdir(made)
    assert metrics_dir_for_workers(Settings(api_key="sk-test")) == (Settings(api_key="sk-test"), None)


def test_a_new_server_starts_from_no_files(tmp_path: Path) -> None:
    (tmp_path / "usage_1-0000000a.json").write_text("{}")
    (tmp_path / "summary_2-0000001b.json.tmp").write_text("{")
    (tmp_path / "counter_1.db").write_text("")
    (tmp_path / "notes_of_mine.json").write_text("{}")
    clean(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["counter_1.db", "notes_of_mine.json"]
