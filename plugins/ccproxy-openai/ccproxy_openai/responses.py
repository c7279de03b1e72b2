"""The OpenAI Responses API as a wire (ccproxy/wire.py): `POST /responses`, for backends with `api = "responses"`."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ccproxy.wire import RequestPlan, ResponseContext, Wire, chat_completions_request
from ccproxy_openai.responses_answer import convert_response
from ccproxy_openai.responses_request import responses_body
from ccproxy_openai.responses_stream import ResponsesStreamTranslator


class ResponsesWire(Wire):
    """Requests converted by the core to Chat Completions, with thinking blocks replayed as `reasoning_details`,
    then reshaped for the Responses API (responses_request.py); answers and streams translated back."""

    path: ClassVar[str] = "/responses"

    def convert_request(self, body: dict[str, Any], plan: RequestPlan) -> dict[str, Any]:
        capabilities = plan.capabilities
        if capabilities.supports_reasoning and capabilities.reasoning_replay != "reasoning_details":
            # The thinking blocks, with their signatures, are what carries the encrypted reasoning back (to a model
            # that reasons: others would refuse reasoning items).
            capabilities = dataclasses.replace(capabilities, reasoning_replay="reasoning_details")
            plan = dataclasses.replace(plan, capabilities=capabilities)
        return responses_body(chat_completions_request(body, plan))

    def convert_response(self, answer: dict[str, Any], ctx: ResponseContext) -> dict[str, Any]:
        return convert_response(answer, ctx)

    def stream_translator(self, ctx: ResponseContext) -> ResponsesStreamTranslator:
        return ResponsesStreamTranslator(ctx)
