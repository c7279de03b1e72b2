"""The OpenAI provider lists a backend's models with GET /models, through the transport it is given."""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy import ProviderConfig, UpstreamFailure
from ccproxy.upstream import UpstreamRequest
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from ccproxy_openai import OpenAIProvider

PROVIDER = OpenAIProvider(ProviderConfig(base_url="http://127.0.0.1:8000/v1", api_key=None, options={}))


def listing(payload: Any, status: int = 200) -> FakeUpstream:
    return FakeUpstream(lambda request: FakeResponse.json(payload, status=status))


async def test_the_ids_of_the_data_list_sorted_and_unique() -> None:
    data = [{"id": "qwen3:8b", "object": "model"}, {"id": "gpt-5"}, {"id": "gpt-5"}, {"object": "no id"}, "junk"]
    upstream = listing({"object": "list", "data": data})
    assert await PROVIDER.list_models(upstream) == ["gpt-5", "qwen3:8b"]
    [request] = upstream.requests
    assert (request.method, request.path, request.body, request.stream) == ("GET", "/models", b"", False)
    assert isinstance(request, UpstreamRequest) and upstream.responses[0].closed


async def test_an_answer_without_a_data_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="without a `data` list"):
        await PROVIDER.list_models(listing({"models": ["gpt-5"]}))


async def test_an_error_status_is_an_upstream_failure() -> None:
    with pytest.raises(UpstreamFailure, match="Upstream error 404"):
        await PROVIDER.list_models(listing({"error": {"message": "no such path"}}, status=404))
