"""One implementation of the twinned core for a test or a benchmark: `[py]` always, `[c]` built and current or fail."""

from __future__ import annotations

import pytest

from ccproxy.core._twins import REQUESTED, CompiledCoreError, Core, load_core

FLAVOURS = ["py", "c"]


def implementation(flavour: str) -> Core:
    """The `_<name>_py` sources ("py") or their compiled twins ("c").

    A compiled core that is not built, incomplete or stale is a failure, not a skip: only CCPROXY_ENABLE_CYTHON=false
    (the compiled core switched off on purpose) skips the `[c]` cases.
    """
    if flavour == "c" and not REQUESTED:
        pytest.skip("CCPROXY_ENABLE_CYTHON=false: the compiled core is switched off on purpose")
    try:
        return load_core(flavour)
    except CompiledCoreError as exc:
        pytest.fail(str(exc), pytrace=False)
