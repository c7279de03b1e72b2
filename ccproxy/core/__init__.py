"""The conversion core: pure, synchronous, no IO. Anthropic <-> OpenAI request, response and stream shapes.

The hot modules have compiled twins: `_<name>_py.py` is the source, `_<name>_c` the Cython extension built from it,
`<name>.py` the facade that exports the one `_twins.compiled_core()` chose (`CCPROXY_ENABLE_CYTHON`, read once at
import). A stale or incomplete build is refused with CompiledCoreError. See ccproxy/core/_twins.py.
"""

from __future__ import annotations

from ccproxy.core._twins import CompiledCoreError, implementation_name

__all__ = ["CompiledCoreError", "implementation_name"]
