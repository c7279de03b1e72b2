"""The files the workers of one server share (ccproxy/worker_files.py): one per worker and kind, replaced whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ccproxy.worker_files import WorkerFile, alive, clean


def test_a_worker_reads_the_other_workers_files_of_its_kind_only(tmp_path: Path) -> None:
    mine, theirs = WorkerFile(str(tmp_path), "usage", pid=11), WorkerFile(str(tmp_path), "usage", pid=12)
    WorkerFile(str(tmp_path), "summary", pid=13).write({"kind": "summary"})
    mine.write({"from": 11})
    theirs.write({"from": 12, "text": "a\ud800b"})  # ASCII on disk: any text survives
    (tmp_path / "usage_14-zz.json").write_text("{}")  # not a name a worker writes
    (tmp_path / "usage_15-0000abcd.json").write_text('{"half": ')  # unreadable: skipped
    (tmp_path / "usage_16-0000abce.json").write_text("[" * 100_000 + "]" * 100_000)  # too deep for the parser
    assert mine.others() == [(12, {"from": 12, "text": "a\ud800b"})]
    assert theirs.others() == [(11, {"from": 11})]
    theirs.write({"from": 12, "again": True})  # replaced whole, same file
    assert mine.others() == [(12, {"from": 12, "again": True})]


def test_two_workers_with_one_pid_keep_two_files(tmp_path: Path) -> None:
    """A worker that exited and a later one that got its pid: both files count."""
    first, later = WorkerFile(str(tmp_path), "usage", pid=7), WorkerFile(str(tmp_path), "usage", pid=7)
    first.write(1)
    later.write(2)
    assert later.others() == [(7, 1)] and first.others() == [(7, 2)]


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    file = WorkerFile(str(tmp_path), "usage", pid=7)
    file.write({"old": True})
    os.mkdir(file.path + ".tmp")  # the write fails there, as on a full disk
    with pytest.raises(OSError):
        file.write({"new": True})
    os.rmdir(file.path + ".tmp")
    assert WorkerFile(str(tmp_path), "usage", pid=8).others() == [(7, {"old": True})]
    assert os.listdir(tmp_path) == [os.path.basename(file.path)]


def test_clean_removes_worker_files_and_nothing_else(tmp_path: Path) -> None:
    ours = ("usage_1-0000000a.json", "summary_2-0000001b.json", "summary_3-0000002c.json.tmp")
    theirs = ("counter_1.db", "notes_1.json", "backup_2024-01.json", "usage_4-abc.json", "other_5-0000000d.json")
    for name in ours + theirs:
        (tmp_path / name).write_text("{}")
    clean(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(theirs)


def test_alive_tells_a_running_process_from_one_that_exited() -> None:
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert alive(os.getpid()) and not alive(int(exited.stdout))
