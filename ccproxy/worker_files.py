"""What the workers of one server share through files: each writes its own JSON file, replaced whole, and reads the
others'. Used for GET /v1/usage's sums and GET /v1/metrics's summary with `ccproxy serve --workers N` (the Prometheus
series have prometheus-client's own files in the same directory).

A worker's file is `<kind>_<pid>-<random>.json`: the random part keeps a later worker that reuses a pid from
replacing a file whose figures still count. The directory is emptied when `ccproxy serve` starts (clean).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
from typing import Any

# The kinds of worker file ccproxy writes: GET /v1/usage's sums, GET /v1/metrics's summary parts.
USAGE_FILES = "usage"
SUMMARY_FILES = "summary"
KINDS = (USAGE_FILES, SUMMARY_FILES)
_NAME = re.compile(r"^([a-z]+)_(\d+)-[0-9a-f]{8}\.json$")


class WorkerFile:
    """This process's file of one kind in `directory`, and the other workers' files of that kind."""

    def __init__(self, directory: str, kind: str, pid: int | None = None) -> None:
        self.directory = directory
        self.kind = kind
        self.pid = os.getpid() if pid is None else pid
        self.path = os.path.join(directory, f"{kind}_{self.pid}-{os.urandom(4).hex()}.json")

    def write(self, data: Any) -> None:
        """Replace this process's file with `data` as JSON (ASCII: any text survives); readers see the old file or
        the new one, never half of one. Raises OSError, leaving no temporary file."""
        temporary = self.path + ".tmp"
        try:
            text = json.dumps(data, separators=(",", ":"))  # one shot: json.dump would encode in Python, ~3x slower
            with open(temporary, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.remove(temporary)
            raise

    def others(self) -> list[tuple[int, Any]]:
        """(pid, content) of every other worker's file of this kind; a file that is gone or unreadable is skipped."""
        found = []
        for path in sorted(glob.glob(os.path.join(self.directory, f"{self.kind}_*.json"))):
            match = _NAME.match(os.path.basename(path))
            if path == self.path or match is None or match.group(1) != self.kind:
                continue
            try:
                with open(path, encoding="utf-8") as file:
                    found.append((int(match.group(2)), json.load(file)))
            except (OSError, ValueError, RecursionError):  # gone, or not JSON ccproxy wrote
                continue
        return found


def alive(pid: int) -> bool:
    """Whether process `pid` still exists (a worker that exited leaves its files behind)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean(directory: str) -> None:
    """Remove the worker files (of KINDS) a previous run left, before the workers start; nothing else."""
    for kind in KINDS:
        for path in glob.glob(os.path.join(directory, f"{kind}_*.json*")):
            if _NAME.match(os.path.basename(path).removesuffix(".tmp")):
                os.remove(path)
