"""ccproxy/memory.py: glibc's mmap threshold is fixed where glibc is the C library (and nothing breaks elsewhere)."""

from __future__ import annotations

import platform

from ccproxy.memory import return_big_buffers


def test_the_threshold_is_set_with_glibc_and_skipped_elsewhere() -> None:
    assert return_big_buffers() is (platform.libc_ver()[0] == "glibc")
