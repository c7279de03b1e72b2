"""Router: direct `backend:model` / `backend,model`, case-insensitive globs in file order, chains, default routes."""

from __future__ import annotations

import json

import pytest

from ccproxy import routing
from ccproxy.config import BackendConfig, SettingsError
from ccproxy.errors import InvalidRequestError, NotFoundError
from ccproxy.routing import Route, Router, Target, models_listing, parse_routes, parse_target

BACKENDS = ("default", "local", "openrouter", "openai")
ROUTES: dict[str, str | tuple[str, ...]] = {
    "claude-*haiku*": "local:qwen3-coder",
    "claude-opus-*": ("openrouter:anthropic/claude-opus-4.5", "openai:gpt-5"),
    "claude-sonnet-*": "gpt-5",
    "*fast*": ("local:qwen3:8b",),
    "big-?": ("qwen3:32b",),
}
DEFAULT_ROUTES = (Route((Target("default", "gpt-5-mini"),), "*haiku*"), Route((Target("default", "gpt-5"),), "*"))


def router(*, defaults: bool = True) -> Router:
    """ROUTES with backend `default` and the default routes, or (defaults=False) only the routes to named backends."""
    if defaults:
        return Router(parse_routes(ROUTES, BACKENDS), DEFAULT_ROUTES, BACKENDS)
    backends = [name for name in BACKENDS if name != "default"]
    named = {
        pattern: value
        for pattern, value in ROUTES.items()
        if all(t.split(":")[0] in backends for t in ((value,) if isinstance(value, str) else value))
    }
    return Router(parse_routes(named, backends), (), backends)


@pytest.mark.parametrize(
    ("requested", "chain", "pattern"),
    [
        ("claude-3-5-haiku-20241022", ["local:qwen3-coder"], "claude-*haiku*"),
        ("CLAUDE-Haiku-4-5", ["local:qwen3-coder"], "claude-*haiku*"),  # globs are case-insensitive
        ("claude-opus-4-5", ["openrouter:anthropic/claude-opus-4.5", "openai:gpt-5"], "claude-opus-*"),
        ("claude-opus-4-5-fast", ["openrouter:anthropic/claude-opus-4.5", "openai:gpt-5"], "claude-opus-*"),  # order
        ("claude-sonnet-4-5", ["default:gpt-5"], "claude-sonnet-*"),  # a bare model is on `default`
        ("something-fast", ["local:qwen3:8b"], "*fast*"),  # the colon after a backend stays in the model
        ("big-1", ["default:qwen3:32b"], "big-?"),  # `qwen3` is no backend: a model name on `default`
        ("my-haiku-model", ["default:gpt-5-mini"], "*haiku*"),  # default routes come after [routes]
        ("gpt-4o", ["default:gpt-5"], "*"),
        ("qwen3:8b", ["default:gpt-5"], "*"),  # `x:y` with x not a backend is an ordinary name
        ("local:qwen3:8b", ["local:qwen3:8b"], None),  # direct, split at the first colon
        ("openrouter:anthropic/claude-opus-4.5", ["openrouter:anthropic/claude-opus-4.5"], None),
        ("openrouter,anthropic/claude-opus-4.5", ["openrouter:anthropic/claude-opus-4.5"], None),
        ("local,claude-opus-4-5", ["local:claude-opus-4-5"], None),  # direct wins over a matching glob
        ("default:claude-opus-4-5", ["default:claude-opus-4-5"], None),
    ],
)
def test_resolve(requested: str, chain: list[str], pattern: str | None) -> None:
    route = router().resolve(requested)
    assert [str(target) for target in route.targets] == chain
    assert route.pattern == pattern


@pytest.mark.parametrize(
    ("requested", "error", "named"),
    [
        (
            "nope,gpt-5",
            InvalidRequestError,
            "'nope' is not a configured backend; configured: local, openai, openrouter",
        ),
        ("local,", InvalidRequestError, "no model after the backend name 'local'"),
        ("local:", InvalidRequestError, "no model after the backend name 'local'"),
        ("gpt-4o", NotFoundError, "model 'gpt-4o' has no route; routes: 'claude-*haiku*', 'claude-opus-*', '*fast*'"),
        ("nope:gpt-4o", NotFoundError, "model 'nope:gpt-4o' has no route"),
    ],
)
def test_resolve_errors(requested: str, error: type[Exception], named: str) -> None:
    with pytest.raises(error) as info:
        router(defaults=False).resolve(requested)
    assert named in str(info.value)
    status, kind = (400, "invalid_request_error") if error is InvalidRequestError else (404, "not_found_error")
    assert isinstance(info.value, InvalidRequestError | NotFoundError)
    assert (info.value.status, info.value.error_type) == (status, kind)


def test_no_routes_and_no_defaults_says_so() -> None:
    with pytest.raises(NotFoundError, match=r"routes: none; or ask for \"backend:model\""):
        Router((), (), ("local",)).resolve("claude-opus-4-5")


def test_resolve_is_memoised_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "MEMO_LIMIT", 2)
    r = router()
    first = r.resolve("claude-opus-4-5")
    assert r.resolve("claude-opus-4-5") is first
    for name in ("a", "b", "c", "d"):
        r.resolve(name)
    assert len(r._memo) == 2
    assert str(r.resolve("d").targets[0]) == "default:gpt-5"  # past the bound still resolves, just not memoised


@pytest.mark.parametrize(
    ("text", "backends", "target"),
    [
        ("local:qwen3:8b", BACKENDS, Target("local", "qwen3:8b")),
        ("qwen3:8b", BACKENDS, Target("default", "qwen3:8b")),
        ("gpt-5", BACKENDS, Target("default", "gpt-5")),
        ("anthropic/claude-opus-4.5", ("default",), Target("default", "anthropic/claude-opus-4.5")),
    ],
)
def test_parse_target(text: str, backends: tuple[str, ...], target: Target) -> None:
    assert parse_target(text, backends, "routes.x") == target


@pytest.mark.parametrize(
    ("table", "named"),
    [
        (
            {"claude-*": ("gpt-5",)},
            'routes."claude-*": \'gpt-5\' is not "backend:model" for a configured backend '
            "(local, openai) and there is no 'default' backend",
        ),
        ({"claude-*": ("local:m", "nope:m")}, 'routes."claude-*": \'nope:m\' is not "backend:model"'),
        ({"claude-*": ("local:",)}, "routes.\"claude-*\": 'local:' names backend 'local' but no model"),
    ],
)
def test_route_errors_at_start_up_name_the_route(table: dict[str, tuple[str, ...]], named: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_routes(table, ("local", "openai"))
    assert str(info.value).startswith(named)


def test_router_refuses_a_route_to_an_unknown_backend() -> None:
    with pytest.raises(SettingsError, match=r"routes.\"\*haiku\*\": no backend 'default'"):
        Router((), DEFAULT_ROUTES, ("local",))


def backend(provider: str, base_url: str | None) -> BackendConfig:
    return BackendConfig(provider=provider, base_url=base_url, api_key="sk-secret-0123456789")


def test_models_listing() -> None:
    r = router()
    backends = {
        "default": backend("openai", "https://api.openai.com/v1"),
        "local": backend("openai", "http://user:pw@127.0.0.1:8000/v1?api-key=sk-q#frag"),
        "openrouter": backend("openrouter", "https://openrouter.ai/api/v1"),
        "openai": backend("openai", None),
    }
    listing = models_listing(r, backends, backend_models={"local": ["qwen3:8b", "qwen3-coder"]})
    ids = [item["id"] for item in listing["data"]]
    assert ids[:6] == list(routing.KNOWN_CLAUDE_MODELS)
    assert ids[6:] == ["local:qwen3:8b", "local:qwen3-coder"]
    assert listing["first_id"] == ids[0] and listing["last_id"] == ids[-1] and listing["has_more"] is False
    by_id = {item["id"]: item for item in listing["data"]}
    assert by_id["claude-opus-4-5"]["display_name"] == (
        "claude-opus-4-5 (via openrouter:anthropic/claude-opus-4.5 -> openai:gpt-5)"
    )
    assert all(item["type"] == "model" and item["created_at"] for item in listing["data"])
    ccproxy = listing["ccproxy"]
    assert ccproxy["routes"][1] == {
        "pattern": "claude-opus-*",
        "targets": ["openrouter:anthropic/claude-opus-4.5", "openai:gpt-5"],
    }
    assert ccproxy["routes"][-1] == {"pattern": "*", "targets": ["default:gpt-5"]}  # default routes last
    assert ccproxy["backends"]["local"] == {"provider": "openai", "base_url": "http://127.0.0.1:8000/v1"}
    assert ccproxy["backends"]["openai"] == {"provider": "openai", "base_url": None}
    text = json.dumps(listing)
    assert "sk-secret" not in text and "pw@" not in text and "sk-q" not in text


def test_models_listing_leaves_out_names_without_a_route() -> None:
    r = Router(parse_routes({"claude-opus-*": ("local:m",)}, ("local",)), (), ("local",))
    listing = models_listing(r, {"local": backend("openai", "http://127.0.0.1:1/v1")})
    assert [item["id"] for item in listing["data"]] == ["claude-opus-4-8", "claude-opus-4-5"]
    empty = models_listing(Router((), (), ("local",)), {})
    assert empty["data"] == [] and empty["first_id"] is None and empty["last_id"] is None
