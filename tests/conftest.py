"""Suite-wide fixtures: `core`, the conversion core's two implementations side by side (`[py]` and `[c]`)."""

from __future__ import annotations

import pytest

from ccproxy.core._twins import Core
from tests.support.cores import FLAVOURS, implementation


@pytest.fixture(scope="session", params=FLAVOURS)
def core(request: pytest.FixtureRequest) -> Core:
    """The twinned core modules of one implementation: `core.request.convert_request`, `core.stream`, ...

    A test that exercises the core takes this fixture and runs twice in one session, `[py]` on the `_<name>_py.py`
    sources and `[c]` on their compiled twins (tests/test_compiled_core.py checks both are what they claim to be).
    HTTP and end-to-end tests use the facades, i.e. the core the process chose.
    """
    return implementation(request.param)
