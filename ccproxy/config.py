"""Pydantic models of plugins.toml; every mistake becomes one line naming its table and key."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_type_hints
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from typing_extensions import TypedDict

from ccproxy.core.plan import ModelCapabilities

__all__ = [
    "BACKEND_NAME",
    "AuthConfig",
    "BackendConfig",
    "CacheConfig",
    "ClientKeyConfig",
    "CoreConfig",
    "FileConfig",
    "PriceConfig",
    "SettingsError",
    "WarmupConfig",
    "dotted",
    "format_validation_error",
    "parse_config",
    "resolve_secrets",
    "validate_table",
]

BACKEND_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Values under a key named like a credential (or any header) are never echoed in an error message.
# `url` is [cache] url, whose password a typo would otherwise print.
_SECRET_KEY = re.compile(r"(?:^|[-_])(?:key|token|secret|password|authorization)$|^headers$|^url$", re.IGNORECASE)
_MAX_ECHO = 60
ModelT = TypeVar("ModelT", bound=BaseModel)
CAPABILITY_FIELDS: tuple[str, ...] = tuple(get_type_hints(ModelCapabilities))


# Client and admin keys: at least this many printable characters (checked here for [auth], in settings.py for the
# environment).
MIN_CLIENT_KEY_CHARS = 16


class SettingsError(ValueError):
    """A missing or invalid setting; the message names it in one line."""


def resolve_secrets(value: Any, env: Mapping[str, str], where: str) -> Any:
    """Replace every `{"$env": "NAME"}` inside `value` by the environment variable NAME."""
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            name = value["$env"]
            if not isinstance(name, str) or name not in env:
                raise SettingsError(f"{where}: environment variable {name!r} is not set")
            return env[name]
        return {key: resolve_secrets(item, env, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_secrets(item, env, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def _expect(what: str) -> WrapValidator:
    """Replace pydantic's wording for one value by `expected <what>` (the formatter adds what was given)."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("expected", "expected " + what) from None

    return WrapValidator(validate)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    parts.port  # noqa: B018 — raises ValueError for a port that is not a number
    return value


def _backend_name(value: str) -> str:
    if not BACKEND_NAME.fullmatch(value):
        raise PydanticCustomError("backend_name", "a backend name may only contain letters, digits, '_', '.' and '-'")
    return value


def _route_targets(value: Any) -> str | tuple[str, ...]:
    """A route's value: one target (kept a string, the shape Settings.routes always had) or a non-empty list."""
    targets = [value] if isinstance(value, str) else value
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t.strip() for t in targets):
        raise PydanticCustomError("expected", 'expected "backend:model", "model" or a non-empty list of them')
    return value if isinstance(value, str) else tuple(targets)


Count = Annotated[int, Field(ge=0, strict=True), _expect("an integer >= 0")]
Seconds = Annotated[float, Field(ge=0, strict=True), _expect("a number of seconds >= 0")]
PositiveSeconds = Annotated[float, Field(gt=0, strict=True), _expect("a number of seconds > 0")]
Text = Annotated[str, Field(min_length=1, strict=True), _expect("a non-empty string")]
Flag = Annotated[bool, Field(strict=True), _expect("true or false")]
HttpUrl = Annotated[str, Field(strict=True), AfterValidator(_http_url), _expect("an http(s) URL")]
Headers = Annotated[dict[str, str], Field(strict=True), _expect("a table of header names to strings")]
BackendName = Annotated[str, AfterValidator(_backend_name)]
TransportName = Annotated[Literal["aiohttp", "lean"], _expect('"aiohttp" or "lean"')]


def _not_a_bool(what: str) -> BeforeValidator:
    """TOML's `true` is no number of anything (pydantic would read it as 1)."""

    def refuse(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError("expected", "expected " + what)
        return value

    return BeforeValidator(refuse)


# [ccproxy] values, lax like the environment's text ("9000" is a port) but never a bool.
Whole = Annotated[int, _not_a_bool("an integer")]
Number = Annotated[float, _not_a_bool("a number")]
Names = Annotated[str | list[str], _expect("comma-separated names or a list of strings")]
RouteTargets = Annotated[str | tuple[str, ...], BeforeValidator(_route_targets)]

if TYPE_CHECKING:
    CapabilityOverrides = dict[str, Any]
else:
    # Built from ModelCapabilities itself so a new capability field is overridable without an edit here; only the
    # keys a table gives are kept, so they can be laid over whatever the provider answers.
    CapabilityOverrides = TypedDict("CapabilityOverrides", get_type_hints(ModelCapabilities), total=False)
    CapabilityOverrides.__pydantic_config__ = ConfigDict(extra="forbid")


class CoreConfig(BaseModel):
    """`[ccproxy]`: the core settings under their lower-case environment names. Field names are Settings'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: str | None = Field(default=None, validation_alias="openai_api_key", repr=False)
    base_url: str | None = Field(default=None, validation_alias="openai_base_url")
    big_model: str | None = Field(default=None, validation_alias="big_model_name")
    small_model: str | None = Field(default=None, validation_alias="small_model_name")
    host: str | None = None
    port: Whole | None = None
    log_level: str | None = None
    workers: Whole | None = Field(default=None, validation_alias="web_concurrency")
    request_timeout: Number | None = None
    connect_timeout: Number | None = None
    allowed_hosts: Names | None = None
    allowed_origins: Names | None = None
    provider: str | None = Field(default=None, validation_alias=AliasChoices("provider", "ccproxy_provider"))
    cache: str | None = Field(default=None, validation_alias=AliasChoices("cache", "ccproxy_cache"))
    disabled_plugins: Annotated[tuple[str, ...], _expect("a list of plugin names")] = ()
    # Issue 11 (operations): the same names as the environment's, in lower case.
    api_keys: tuple[str, ...] | None = Field(default=None, validation_alias="ccproxy_api_keys", repr=False)
    admin_key: str | None = Field(default=None, validation_alias="ccproxy_admin_key", repr=False)
    allow_unauthenticated: bool | None = None
    log_format: Literal["json", "text"] | None = None
    log_file_path: str | None = None
    error_log_file_path: str | None = None
    log_file_max_bytes: int | None = None
    log_file_backups: int | None = None
    metrics_dir: str | None = Field(default=None, validation_alias="prometheus_multiproc_dir")
    # Issue 11 item 7 (resource bounds): the same names as the environment's, in lower case.
    max_concurrent_requests: Whole | None = None
    overload_wait: Number | None = None
    max_request_body_bytes: Whole | None = None
    max_upstream_body_bytes: Whole | None = None
    max_sse_line_bytes: Whole | None = None
    shutdown_grace: Number | None = None

    def settings_values(self) -> dict[str, Any]:
        """The keys the table set, by Settings field name (the environment may still override them)."""
        return self.model_dump(exclude_unset=True)


class BackendConfig(BaseModel):
    """`[backends.<name>]`: one provider x its settings. Keys not declared here are provider options."""

    model_config = ConfigDict(frozen=True, extra="allow")

    provider: Text
    base_url: HttpUrl | None = None  # None: the provider's default_base_url
    api_key: str | None = Field(default=None, repr=False)  # None: the provider's key_env_var, if set
    api_key_required: Flag | None = None  # None: the key rule decides (provider x host)
    headers: Headers = Field(default_factory=dict, repr=False)
    connect_timeout: PositiveSeconds | None = None  # None: CONNECT_TIMEOUT
    request_timeout: PositiveSeconds | None = None  # None: REQUEST_TIMEOUT
    retries: Count = 2
    breaker_failures: Count = 5
    breaker_cooldown: Seconds = 60.0
    rpm: Count = 0  # 0 = unlimited
    tpm: Count = 0
    limit_wait: Seconds = 10.0
    max_connections: Count = 100  # upstream connections per server process (aiohttp's own default); 0 = no limit
    transport: TransportName = "lean"  # the HTTP client: the lean one (ccproxy/upstream/lean.py), or aiohttp
    reasoning: Text | None = None  # None: the provider's default_reasoning, else the global default
    models: dict[str, CapabilityOverrides] = Field(default_factory=dict)

    _table: str = PrivateAttr("backends")
    _legacy: bool = PrivateAttr(False)

    @property
    def options(self) -> dict[str, Any]:
        """The provider options: every key of the table this model does not declare."""
        return dict(self.model_extra or {})

    @property
    def table(self) -> str:
        """Where this backend was configured, for error messages: `backends.<name>` or `plugins.<provider>`."""
        return self._table

    @property
    def legacy(self) -> bool:
        """Whether this is the `default` backend made from the legacy variables."""
        return self._legacy

    def where(self, key: str) -> str:
        """How an error names `key` of this backend. The legacy provider choice is `provider`, as it always was."""
        if self._legacy and key == "provider":
            return "provider"
        return f"{self._table}.{dotted((key,))}"

    def located(self, table: str, *, legacy: bool = False) -> BackendConfig:
        """This config, remembering where it came from (kept by `model_copy`)."""
        self._table = table
        self._legacy = legacy
        return self

    def replaced(self, **changes: Any) -> BackendConfig:
        """A copy with `changes` applied (already valid values: no validation), keeping where it came from."""
        return self.model_copy(update=changes)


# ----------------------------------------------------------------------------------------------------- [auth], [prices]
# Issue 11 (client keys, usage and cost). Self-contained: Settings keeps both tables as read (secrets resolved) and
# ccproxy/keys.py and ccproxy/prices.py validate them with these models, so errors name `auth.keys[0].rpm`.

Usd = Annotated[float, Field(ge=0, strict=True), _expect("a number of US dollars >= 0")]
PerMillion = Annotated[float, Field(ge=0, strict=True), _expect("US dollars per million tokens, >= 0")]
ModelGlobs = Annotated[tuple[Text, ...], _expect("a list of model names or globs")]


def _client_key(value: str) -> str:
    if len(value) < MIN_CLIENT_KEY_CHARS or any(c.isspace() or not c.isprintable() for c in value):
        raise PydanticCustomError(
            "expected",
            f"expected a key of at least {MIN_CLIENT_KEY_CHARS} printable characters without spaces "
            "(e.g. `openssl rand -hex 24`)",
        )
    return value


ClientKeyText = Annotated[str, Field(strict=True), AfterValidator(_client_key)]


class ClientKeyConfig(BaseModel):
    """`[[auth.keys]]`: one client key and its limits (0 / absent = unlimited)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: ClientKeyText = Field(repr=False)
    name: str = ""
    models: ModelGlobs | None = None  # requested-model globs this key may use; None = every model
    rpm: Count = 0
    tpm: Count = 0
    budget_usd: Usd | None = None
    budget_period: Literal["day", "month"] = "day"


class AuthConfig(BaseModel):
    """`[auth]`: client keys (besides CCPROXY_API_KEYS), the admin key and the unauthenticated-bind switch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keys: tuple[ClientKeyConfig, ...] = ()
    admin_key: ClientKeyText | None = Field(default=None, repr=False)
    allow_unauthenticated: Flag | None = None


class PriceConfig(BaseModel):
    """`[prices."<upstream model>"]`: US dollars per million tokens. Cache reads and writes default to the input
    price (what a provider without prompt caching charges)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: PerMillion
    output: PerMillion
    cache_read: PerMillion | None = None
    cache_write: PerMillion | None = None


# ------------------------------------------------------------------------------------------------------------ [cache]
# Issue 10 (shared state): the cache backend's common options, the response cache and warm-up. The environment
# (CACHE_BACKEND, REDIS_URL, RESPONSE_CACHE*, CACHE_WARMUP_*) overrides these keys (ccproxy/settings.py).


def _store_url(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.path) or any(c.isspace() for c in value):
        raise PydanticCustomError("expected", "expected a URL such as redis://host:6379/0")
    return value


StoreUrl = Annotated[str, Field(strict=True), AfterValidator(_store_url)]
PositiveCount = Annotated[int, Field(ge=1, strict=True), _expect("an integer >= 1")]


class WarmupConfig(BaseModel):
    """`[cache.warmup]`: popular response-cache entries saved to a file and loaded at start (docs/cache.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: Flag = False
    file_path: Text = "ccproxy-cache-warmup.jsonl"
    max_items: PositiveCount = 1000
    on_startup: Flag = True
    auto_save_popular: Flag = True
    popularity_threshold: PositiveCount = 3
    save_interval_seconds: PositiveSeconds = 300.0


class CacheConfig(BaseModel):
    """`[cache]`: the cache backend and what the response cache does. `url`, `key_prefix` and `ttl` are handed to
    the backend (a `[plugins.<backend>]` table's own keys win)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Text | None = None  # as `[ccproxy] cache`
    url: StoreUrl | None = Field(default=None, repr=False)  # may hold a password
    key_prefix: Text | None = None
    ttl: PositiveSeconds | None = None  # the backend's default TTL
    responses: Flag = False
    response_ttl: PositiveSeconds = 300.0
    dedupe_wait: PositiveSeconds = 60.0  # how long another process's identical call is waited for
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)


class FileConfig(BaseModel):
    """The whole plugins.toml. Unknown top-level tables are errors: plugins keep options in `[plugins.<name>]`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ccproxy: CoreConfig = Field(default_factory=CoreConfig)
    backends: dict[BackendName, BackendConfig] = Field(default_factory=dict)
    routes: dict[Annotated[str, Field(min_length=1)], RouteTargets] = Field(default_factory=dict)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    reasoning: dict[str, Any] = Field(default_factory=dict)
    guardrails: dict[str, Any] = Field(default_factory=dict)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    prices: dict[Annotated[str, Field(min_length=1)], PriceConfig] = Field(default_factory=dict)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    @model_validator(mode="after")
    def _locate_backends(self) -> FileConfig:
        for name, backend in self.backends.items():
            backend.located(dotted(("backends", name)))
        return self


KNOWN_TABLES: tuple[str, ...] = tuple(FileConfig.model_fields)


def parse_config(document: Mapping[str, Any], env: Mapping[str, str], *, source: str | None = None) -> FileConfig:
    """A parsed TOML document as FileConfig: `{"$env" = "NAME"}` secrets resolved first, then validated.

    Raises SettingsError naming the first bad table and key; `source` (the file) is named for unknown keys.
    """
    for key in document:
        if key not in KNOWN_TABLES:
            in_file = f" in {source}" if source else ""
            known = ", ".join(KNOWN_TABLES)
            raise SettingsError(f"{dotted((key,))}: unknown table{in_file}; the tables ccproxy reads are {known}")
    resolved = {table: resolve_secrets(value, env, table) for table, value in document.items()}
    try:
        return FileConfig.model_validate(resolved)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc, source=source)) from None


def validate_table(model: type[ModelT], table: Mapping[str, Any], where: str) -> ModelT:
    """`model.model_validate(table)`; its first error as a SettingsError located under `where` (`backends.x`)."""
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc, prefix=where)) from None


# pydantic error type -> how we say what was expected; `{name}` fields come from the error's context.
_EXPECTED: dict[str, str] = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a table",
    "list_type": "a list",
    "tuple_type": "a list",
    "literal_error": "{expected}",
    "greater_than": "a value > {gt}",
    "greater_than_equal": "a value >= {ge}",
    "less_than": "a value < {lt}",
    "less_than_equal": "a value <= {le}",
    "string_too_short": "a non-empty string",
    "too_short": "a non-empty list",
}


def format_validation_error(exc: ValidationError, *, prefix: str = "", source: str | None = None) -> str:
    """The first error of `exc` as one line: `table.key: expected ..., got ...` (secrets never echoed).

    `prefix` is where the validated table sits (`backends.local`); `source` is named for unknown keys.
    """
    errors = exc.errors(include_url=False)
    line = _format_error(errors[0], prefix, source)
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    return line


def _format_error(error: ErrorDetails, prefix: str, source: str | None) -> str:
    loc = tuple(part for part in error["loc"] if part != "[key]")  # pydantic marks dict-key errors with "[key]"
    key = dotted(loc)
    where = (f"{prefix}.{key}" if prefix and key and not key.startswith("[") else prefix + key) or "config"
    kind = error["type"]
    if kind == "missing":
        return f"{where}: required"
    if kind == "extra_forbidden":
        in_file = f" in {source}" if source else ""
        if len(loc) >= 3 and loc[-3] == "models":
            return f"{where}: unknown capability{in_file}; known: {', '.join(CAPABILITY_FIELDS)}"
        return f"{where}: unknown setting{in_file}"
    if kind == "expected" or kind == "backend_name":
        text = error["msg"]
    elif kind in _EXPECTED:
        text = "expected " + _EXPECTED[kind].format(**error.get("ctx", {}))
    else:
        text = error["msg"][:1].lower() + error["msg"][1:]
    return f"{where}: {text}{_echo(loc, error['input'])}"


def _echo(loc: tuple[int | str, ...], value: Any) -> str:
    """`, got <value>`, or nothing when the key may hold a secret."""
    if any(isinstance(part, str) and _SECRET_KEY.search(part) for part in loc):
        return ""
    text = repr(value)
    return ", got " + (text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 3] + "...")


def dotted(parts: Sequence[int | str]) -> str:
    """A location the way TOML writes it: `backends.local.models."qwen3:8b".max_output_tokens`, `x[0]`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            out += f".{key}" if out else key
    return out
