"""GET /v1/usage across a server's workers: each worker's sums in its own file, read as one (ccproxy.usage)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ccproxy.usage import UsageTotals, WorkerFiles, clean_worker_files
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
    assert sorted(os.listdir(tmp_path)) == ["usage_101.json"]  # no temporary file left beside it
    assert json.loads((tmp_path / "usage_101.json").read_text())["rows"][0][:5] == [
        *next(iter(totals.rows)),
        1.0,
        0.0,
    ]
    (tmp_path / "usage_103.json").write_text('{"rows": [[1, 2')  # a worker that died writing (or not ours)
    (tmp_path / "usage_104.json").write_text('{"since": 0, "rows": [["x", "y"]]}')
    rows, _ = await second.read(UsageTotals(Wall()))
    assert [row[0] for row in rows.values()] == [1.0]


async def test_publishing_writes_only_when_something_changed(tmp_path: Path) -> None:
    first, _ = pair(tmp_path)
    totals = UsageTotals(Wall())
    await first.publish(totals)  # the first publish writes even nothing: the worker is known to the others
    written = (tmp_path / "usage_101.json").stat().st_mtime_ns
    os.utime(tmp_path / "usage_101.json", ns=(0, 0))
    await first.publish(totals)
    assert (tmp_path / "usage_101.json").stat().st_mtime_ns == 0 != written
    totals.add_all([done("key_a", "gpt-5", 3, 1, None)])
    await first.publish(totals)
    assert (tmp_path / "usage_101.json").stat().st_mtime_ns != 0


def test_a_new_server_starts_from_no_files(tmp_path: Path) -> None:
    (tmp_path / "usage_1.json").write_text("{}")
    (tmp_path / "usage_2.json.2.tmp").write_text("{")
    (tmp_path / "counter_1.db").write_text("")
    clean_worker_files(str(tmp_path))
    assert os.listdir(tmp_path) == ["counter_1.db"]
