"""Big request buffers go back to the operating system when freed (glibc's malloc would keep them)."""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt(3) parameter: allocations at least this large are served by mmap and unmapped when freed.
M_MMAP_THRESHOLD = -3
# 1 MiB: request bodies, their parsed text and token lists above it are mapped; everything smaller stays in the heap.
MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_big_buffers() -> bool:
    """Fix glibc's mmap threshold (called once per server process); False where the C library is not glibc.

    glibc raises the threshold to the size of each mapped block freed (up to 32 MiB), so after the first big body
    the next ones come from the heap, whose freed pages are kept: 16 concurrent 30 MB count_tokens bodies left a
    worker at ~1 GB RSS for good, ~0.65 GB with the threshold fixed (docs/operations.md, "Limits"). musl (Alpine)
    maps big blocks anyway.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (no mallopt), or no C library to load
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
