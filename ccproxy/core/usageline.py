"""The usage log's lines: `_usageline_py.py` or its hand-written compiled twin (chosen in _twins.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccproxy.core._twins import compiled_core

if TYPE_CHECKING or not compiled_core():
    from ccproxy.core._usageline_py import *  # noqa: F403  # the twin's __all__ is this module's API
else:
    from ccproxy.core._usageline_c import *  # noqa: F403  # the twin's __all__ is this module's API
