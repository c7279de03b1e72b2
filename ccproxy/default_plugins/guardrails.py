"""Built-in guardrails, all off unless configured in `[guardrails]`: the default chain is empty."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, ClassVar

from ccproxy.errors import ProxyError
from ccproxy.events import GuardrailEvent
from ccproxy.hookspecs import RegisterGuardrail, ReportGuardrailEvent, hookimpl
from ccproxy.interfaces import Guardrail, GuardrailContext


class ModelAllowList(Guardrail):
    """Refuse requests for models not matching `allowed_models` (glob patterns) with 403 permission_error."""

    name: ClassVar[str] = "allowed_models"
    amends_tools: ClassVar[bool] = False
    amends_messages: ClassVar[bool] = False

    def __init__(self, patterns: list[str], audit: ReportGuardrailEvent | None = None) -> None:
        self.patterns = tuple(patterns)
        self.audit = audit

    async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        model = str(body.get("model", ""))
        if not any(fnmatchcase(model, pattern) for pattern in self.patterns):
            if self.audit is not None:
                self.audit(GuardrailEvent(context.request_id, self.name, "block", "request", detail="model"))
            raise ProxyError(f"model {model!r} is not allowed on this proxy", status=403)


@hookimpl(trylast=True)
def ccproxy_register_guardrails(
    register: RegisterGuardrail, options: Mapping[str, Any], audit: ReportGuardrailEvent
) -> None:
    patterns = options.get("allowed_models")
    if patterns:
        register(ModelAllowList([str(p) for p in patterns], audit))
