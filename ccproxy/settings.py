"""One frozen Settings, from defaults < plugins.toml < .env < environment < explicit arguments."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from ccproxy.backends import display_url, split_credentials, upstream_auth
from ccproxy.config import (
    MIN_CLIENT_KEY_CHARS,
    BackendConfig,
    CacheConfig,
    CoreConfig,
    SettingsError,
    dotted,
    format_validation_error,
    parse_config,
    resolve_secrets,
)
from ccproxy.legacy import BackendPlan, legacy_configured, legacy_values, makes_legacy_default, plan_backends
from ccproxy.routing import parse_routes

__all__ = [
    "Settings",
    "SettingsError",
    "backend_plan",
    "display_url",
    "load_settings",
    "parse_env_file",
    "resolve_secrets",
    "split_credentials",
    "upstream_auth",
    "validate_settings",
]

DEFAULT_CONFIG_FILE = "plugins.toml"
DEFAULT_ENV_FILE = ".env"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_PROVIDER = "openai"

# Environment name -> Settings field. The same names, lower-cased, are accepted in the [ccproxy] table.
ENV_FIELDS: dict[str, str] = {
    "OPENAI_BASE_URL": "base_url",
    "BIG_MODEL_NAME": "big_model",
    "SMALL_MODEL_NAME": "small_model",
    "HOST": "host",
    "PORT": "port",
    "LOG_LEVEL": "log_level",
    "WEB_CONCURRENCY": "workers",
    "REQUEST_TIMEOUT": "request_timeout",
    "CONNECT_TIMEOUT": "connect_timeout",
    "CCPROXY_PROVIDER": "provider",
    "CCPROXY_CACHE": "cache",
    "CACHE_BACKEND": "cache",  # the same setting; wins over CCPROXY_CACHE
    "ALLOWED_HOSTS": "allowed_hosts",
    "ALLOWED_ORIGINS": "allowed_origins",
    # --- issue 11: client keys, admin key, logs, metrics (fields in the block at the end of Settings)
    "CCPROXY_API_KEYS": "api_keys",
    "CCPROXY_ADMIN_KEY": "admin_key",
    "ALLOW_UNAUTHENTICATED": "allow_unauthenticated",
    "LOG_FORMAT": "log_format",
    "LOG_FILE_PATH": "log_file_path",
    "ERROR_LOG_FILE_PATH": "error_log_file_path",
    "LOG_FILE_MAX_BYTES": "log_file_max_bytes",
    "LOG_FILE_BACKUPS": "log_file_backups",
    "PROMETHEUS_MULTIPROC_DIR": "metrics_dir",
    # --- issue 11 item 7: resource bounds (docs/operations.md, "Limits")
    "MAX_CONCURRENT_REQUESTS": "max_concurrent_requests",
    "OVERLOAD_WAIT": "overload_wait",
    "MAX_REQUEST_BODY_BYTES": "max_request_body_bytes",
    "MAX_UPSTREAM_BODY_BYTES": "max_upstream_body_bytes",
    "MAX_SSE_LINE_BYTES": "max_sse_line_bytes",
    "SHUTDOWN_GRACE": "shutdown_grace",
}
INT_FIELDS = frozenset({"port", "workers", "log_file_max_bytes", "log_file_backups"}) | frozenset(
    {"max_concurrent_requests", "max_request_body_bytes", "max_upstream_body_bytes", "max_sse_line_bytes"}
)
FLOAT_FIELDS = frozenset({"request_timeout", "connect_timeout", "overload_wait", "shutdown_grace"})
LIST_FIELDS = frozenset({"allowed_hosts", "allowed_origins"})  # comma-separated in the environment
KEY_LIST_FIELDS = frozenset({"api_keys"})  # comma-separated secrets: kept as written, never lower-cased or echoed
BOOL_FIELDS = frozenset({"allow_unauthenticated"})
LOG_FORMATS = ("json", "text")
# What ccproxy/core/__init__.py understands for CCPROXY_ENABLE_CYTHON (it treats any other word as true).
BOOLEAN_WORDS = frozenset({"1", "true", "yes", "on", "0", "false", "no", "off"})
# Read from the process environment at import, before settings exist (see ccproxy/core/__init__.py).
IMPORT_TIME_SETTINGS = ("CCPROXY_ENABLE_CYTHON",)

# Settings the original CCProxy (CCWorkforce/CCProxy, ccproxy/config.py and .env.example) documented that ccproxy does
# not honour (yet) -> what to do instead. Each one found in the environment or .env gets a start-up warning; the issue
# that implements a setting removes its entry here.
_NOT_YET = "not supported yet"
_RETRIES = (
    "use retries = N in a [backends.<name>] table of plugins.toml (docs/configuration.md); the backend the legacy "
    "variables make tries once, as the Anthropic SDKs and Claude Code retry 429 and 5xx answers themselves"
)
_CIRCUIT = "use breaker_failures and breaker_cooldown in a [backends.<name>] table of plugins.toml"
_RATE = "not supported yet; ccproxy does not limit its clients' requests"
_UPSTREAM_RATE = "use rpm, tpm and limit_wait in a [backends.<name>] table of plugins.toml (adaptive to 429s)"
_POOL = (
    "use max_connections in a [backends.<name>] table of plugins.toml (100 per process by default) and OVERLOAD_WAIT;"
    " idle connections are kept 60 s"
)
_CONVERTER_CACHE = "not needed: requests are converted without a cache"
UNSUPPORTED_SETTINGS: dict[str, str] = {
    "LOG_PRETTY_CONSOLE": _NOT_YET,
    "IS_LOCAL_DEPLOYMENT": "not needed: HOST, ALLOWED_HOSTS and ALLOWED_ORIGINS decide who may connect",
    "REFERER_URL": 'use [plugins.openai] headers = {"HTTP-Referer" = "..."} in plugins.toml instead',
    "RATE_LIMIT_ENABLED": _RATE,
    "RATE_LIMIT_PER_MINUTE": _RATE,
    "RATE_LIMIT_BURST": _RATE,
    "SECURITY_HEADERS_ENABLED": _NOT_YET,
    "ENABLE_HSTS": "not supported: ccproxy serves plain HTTP; put a TLS proxy in front for HTTPS",
    "ENABLE_CORS": "use ALLOWED_ORIGINS instead (CORS is answered for the origins listed there)",
    "CORS_ALLOW_ORIGINS": "use ALLOWED_ORIGINS instead",
    "CORS_ALLOW_METHODS": "not needed: preflights from ALLOWED_ORIGINS are answered for the methods of the API",
    "CORS_ALLOW_HEADERS": "not needed: preflights from ALLOWED_ORIGINS are answered for the headers they ask for",
    "RESTRICT_BASE_URL": "not supported: OPENAI_BASE_URL is used as configured",
    "ALLOWED_BASE_URL_HOSTS": "not supported: OPENAI_BASE_URL is used as configured",
    "REDACT_LOG_FIELDS": "not needed: ccproxy logs no bodies or headers and redacts the upstream key everywhere",
    "ERROR_TRACKING_ENABLED": _NOT_YET,
    "ERROR_TRACKING_FILE": _NOT_YET,
    "ERROR_TRACKING_MAX_SIZE_MB": _NOT_YET,
    "ERROR_TRACKING_RETENTION_DAYS": _NOT_YET,
    "ERROR_TRACKING_CAPTURE_REQUEST": _NOT_YET,
    "ERROR_TRACKING_CAPTURE_RESPONSE": _NOT_YET,
    "ERROR_TRACKING_MAX_BODY_SIZE": _NOT_YET,
    "MAX_STREAM_SECONDS": "use REQUEST_TIMEOUT: it bounds each upstream read and the whole answer",
    "CACHE_TOKEN_COUNTS_ENABLED": "not supported yet; count_tokens answers are always cached (600 s)",
    "CACHE_TOKEN_COUNTS_TTL_S": "not supported yet; count_tokens answers are cached for 600 s",
    "CACHE_TOKEN_COUNTS_MAX": "use max_entries in the [plugins.memory] table of plugins.toml instead",
    "TOKENIZER_CACHE_SHARDS": _CONVERTER_CACHE,
    "CACHE_CONVERTERS_ENABLED": _CONVERTER_CACHE,
    "CACHE_CONVERTERS_MAX": _CONVERTER_CACHE,
    "STREAM_DEDUPE_ENABLED": "use RESPONSE_CACHE=on: identical concurrent requests then share one upstream call",
    "METRICS_CACHE_ENABLED": _NOT_YET,
    "TRUNCATE_LONG_REQUESTS": "not supported yet; a prompt too long for the model gets the upstream's 400",
    "TRUNCATION_CONFIG": "not supported yet; a prompt too long for the model gets the upstream's 400",
    "CACHE_WARMUP_PRELOAD_COMMON": (
        "not supported: ccproxy ships no list of common prompts to preload; the warm-up file "
        "(CACHE_WARMUP_FILE_PATH) holds what is loaded"
    ),
    "PROVIDER_MAX_RETRIES": _RETRIES,
    "PROVIDER_RETRY_BASE_DELAY": _RETRIES,
    "PROVIDER_RETRY_JITTER": _RETRIES,
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD": _CIRCUIT,
    "CIRCUIT_BREAKER_RECOVERY_TIMEOUT": _CIRCUIT,
    "CIRCUIT_BREAKER_HALF_OPEN_REQUESTS": _CIRCUIT,
    "POOL_MAX_KEEPALIVE_CONNECTIONS": _POOL,
    "POOL_MAX_CONNECTIONS": _POOL,
    "POOL_KEEPALIVE_EXPIRY": _POOL,
    "HTTP_CONNECT_TIMEOUT": "use CONNECT_TIMEOUT instead",
    "HTTP_WRITE_TIMEOUT": "not supported yet; REQUEST_TIMEOUT bounds each upstream read and the whole answer",
    "HTTP_POOL_TIMEOUT": _POOL,
    "TRACING_ENABLED": _NOT_YET,
    "TRACING_EXPORTER": _NOT_YET,
    "TRACING_ENDPOINT": _NOT_YET,
    "TRACING_SERVICE_NAME": _NOT_YET,
    "CLIENT_RATE_LIMIT_ENABLED": _UPSTREAM_RATE,
    "CLIENT_RATE_LIMIT_RPM": _UPSTREAM_RATE,
    "CLIENT_RATE_LIMIT_TPM": _UPSTREAM_RATE,
    "CLIENT_RATE_LIMIT_BURST": _UPSTREAM_RATE,
    "CLIENT_RATE_LIMIT_ADAPTIVE": _UPSTREAM_RATE,
    "THREAD_POOL_MAX_WORKERS": "not needed: token counting runs in the event loop's default thread pool",
    "THREAD_POOL_HIGH_CPU_THRESHOLD": _NOT_YET,
    "THREAD_POOL_AUTO_SCALE": _NOT_YET,
    "THREAD_POOL_SHRINK_THRESHOLD": _NOT_YET,
    "THREAD_POOL_SHRINK_DELAY_SECONDS": _NOT_YET,
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the app factory needs. Nothing reads os.environ after this is built."""

    api_key: str | None = field(default=None, repr=False)
    # As configured: it may carry `user:password@` (see split_credentials), so it is never logged as it is.
    base_url: str = field(default=OPENAI_BASE_URL, repr=False)
    big_model: str = "gpt-5"
    small_model: str = "gpt-5-mini"
    host: str = "127.0.0.1"
    port: int = 11434
    log_level: str = "INFO"
    workers: int = 1
    request_timeout: float = 600.0
    connect_timeout: float = 10.0
    provider: str = DEFAULT_PROVIDER
    cache: str = "memory"
    # Host header names served besides localhost and IP addresses ("*": any); lower case, no port.
    allowed_hosts: tuple[str, ...] = ()
    # Browser origins (`scheme://host[:port]`, lower case) allowed to call the API; none by default.
    allowed_origins: tuple[str, ...] = ()
    # (glob pattern, target or targets) pairs from [routes], in file order; a target is "backend:model" or a model on
    # backend `default` (ccproxy/routing.py).
    routes: tuple[tuple[str, str | tuple[str, ...]], ...] = ()
    # The [backends.<name>] tables, validated (ccproxy/config.py); the legacy variables add backend `default`.
    backend_tables: Mapping[str, BackendConfig] = field(default_factory=dict, repr=False)
    # Whether any legacy variable (OPENAI_API_KEY, ..., or a [plugins.<provider>] table) was set (ccproxy/legacy.py).
    legacy_configured: bool = False
    disabled_plugins: tuple[str, ...] = ()
    plugin_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    reasoning_options: Mapping[str, Any] = field(default_factory=dict)
    guardrail_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    config_path: str | None = None
    # (name, hint) of each setting found in the environment or .env that is not honoured: warned about at start-up.
    ignored_settings: tuple[tuple[str, str], ...] = ()
    # The environment and .env as loaded: a provider's `key_env_var` is only known once plugins are loaded.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Client keys, admin key, logs, metrics (docs/operations.md).
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # CCPROXY_API_KEYS
    admin_key: str | None = field(default=None, repr=False)  # CCPROXY_ADMIN_KEY
    allow_unauthenticated: bool | None = None  # None: [auth] allow_unauthenticated, else false
    log_format: str | None = None  # "json" | "text"; None: json unless stderr is a terminal
    log_file_path: str | None = None
    error_log_file_path: str | None = None
    log_file_max_bytes: int = 10 * 1024 * 1024
    log_file_backups: int = 5
    metrics_dir: str | None = None  # prometheus multiprocess directory; `ccproxy serve` makes one for N workers
    # The [auth] and [prices] tables as read (secrets resolved); validated by ccproxy/config.py models where used.
    auth_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    price_options: Mapping[str, Any] = field(default_factory=dict)
    # The [cache] table with the environment's REDIS_URL, RESPONSE_CACHE*, CACHE_WARMUP_* laid over it (issue 10).
    cache_options: CacheConfig = field(default_factory=CacheConfig, repr=False)
    # Resource bounds per server process (docs/operations.md, "Limits"); 0 = no bound where the docs say so.
    max_concurrent_requests: int = 256  # /v1/messages and count_tokens handled at once; more wait, then get 529
    overload_wait: float = 1.0  # seconds a request over the cap waits for a slot before its 529
    max_request_body_bytes: int = 32 * 1024 * 1024  # Anthropic's own limit; larger bodies get 413
    max_upstream_body_bytes: int = 32 * 1024 * 1024  # a non-stream upstream answer; larger -> 502
    max_sse_line_bytes: int = 16 * 1024 * 1024  # one line of an upstream event stream; longer -> error event
    shutdown_grace: float = 20.0  # seconds running streams may go on after SIGTERM; then an error event ends them

    def options_for(self, plugin: str) -> Mapping[str, Any]:
        """The `[plugins.<name>]` table, secrets already resolved."""
        return self.plugin_options.get(plugin, {})


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file; comments, blank lines, `export ` and surrounding quotes allowed."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def _coerce(name: str, value: Any, source: str) -> Any:
    """A setting's value from the environment (always text) or plugins.toml, checked for its type."""
    if name in INT_FIELDS:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
        raise SettingsError(f"{source}: expected a whole number, got {value!r}")
    if name in FLOAT_FIELDS:
        number = _as_float(value)
        if number is None:
            raise SettingsError(f"{source}: expected a number of seconds, got {value!r}")
        return number
    if name in KEY_LIST_FIELDS:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise SettingsError(f"{source}: expected comma-separated keys (or a list of strings in plugins.toml)")
        return tuple(item.strip() for item in items if item.strip())
    if name in BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
            return value.strip().lower() in ("1", "true", "yes", "on")
        raise SettingsError(f"{source}: expected true or false, got {value!r}")
    if name in LIST_FIELDS:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise SettingsError(f"{source}: expected comma-separated names (or a list of strings in plugins.toml)")
        # Host and Origin headers compare case-insensitively; browsers send origins without a trailing slash.
        return tuple(item.strip().lower().rstrip("/") for item in items if item.strip())
    if not isinstance(value, str):
        raise SettingsError(f"{source}: expected a string, got {value!r}")
    return value


def _as_float(value: Any) -> float | None:
    """A finite float from a number or its text; None when it is not one (bools, nan, inf included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None


def _config_values(config: Mapping[str, Any], env: Mapping[str, str], path: Path) -> tuple[dict[str, Any], CoreConfig]:
    """Settings fields from a parsed plugins.toml (ccproxy/config.py names the table and key of any mistake), and
    its `[ccproxy]` table (which legacy variables it sets)."""
    file = parse_config(config, env, source=str(path))
    values: dict[str, Any] = {"config_path": str(path)}
    for name, value in file.ccproxy.settings_values().items():
        values[name] = _coerce(name, value, f"ccproxy.{name}") if name in LIST_FIELDS else value
    values["routes"] = tuple(file.routes.items())
    values["backend_tables"] = file.backends
    values["plugin_options"] = file.plugins
    values["reasoning_options"] = file.reasoning
    values["guardrail_options"] = file.guardrails
    # [auth] and [prices] as written (secrets resolved; parse_config validated them): keys.py and prices.py read them.
    values["auth_options"] = resolve_secrets(config.get("auth", {}), env, "auth")
    values["price_options"] = resolve_secrets(config.get("prices", {}), env, "prices")
    values["cache_options"] = file.cache
    if file.cache.backend is not None:
        if file.ccproxy.cache is not None and file.ccproxy.cache != file.cache.backend:
            raise SettingsError(
                f"cache.backend: {file.cache.backend!r} and [ccproxy] cache = {file.ccproxy.cache!r} disagree; "
                "set one of them"
            )
        values["cache"] = file.cache.backend
    return values, file.ccproxy


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for env_name, name in ENV_FIELDS.items():
        if env.get(env_name, "") != "":
            values[name] = _coerce(name, env[env_name], env_name)
    key = env.get("OPENAI_API_KEY") or env.get("OPENROUTER_API_KEY")
    if key:
        values["api_key"] = key
        if not env.get("OPENAI_API_KEY") and not env.get("OPENAI_BASE_URL"):
            values["base_url"] = OPENROUTER_BASE_URL
    return values


def _ignored_settings(env: Mapping[str, str], process_env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """(name, hint) of every setting that is set but will not be honoured, for the start-up warning."""
    ignored = [(name, hint) for name, hint in UNSUPPORTED_SETTINGS.items() if env.get(name, "") != ""]
    ignored.extend(
        (name, "ccproxy reads it from the process environment before .env is loaded: export it instead")
        for name in IMPORT_TIME_SETTINGS
        if env.get(name, "") != "" and name not in process_env
    )
    return tuple(ignored)


def _check_import_time_settings(env: Mapping[str, str]) -> None:
    for name in IMPORT_TIME_SETTINGS:
        value = env.get(name, "")
        if value.strip() and value.strip().lower() not in BOOLEAN_WORDS:
            raise SettingsError(f"{name}: expected true or false, got {value!r}")


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    config_path: str | os.PathLike[str] | None = None,
    env_file: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build Settings from every source; raise SettingsError naming the first bad setting."""
    process_env = dict(os.environ if environ is None else environ)
    env_path = Path(env_file or process_env.get("CCPROXY_ENV_FILE") or DEFAULT_ENV_FILE)
    env = {**(parse_env_file(env_path) if env_path.is_file() else {}), **process_env}
    _check_import_time_settings(env)

    values: dict[str, Any] = {}
    core = CoreConfig()
    path_text = config_path or env.get("CCPROXY_CONFIG")
    path = Path(path_text) if path_text else Path(DEFAULT_CONFIG_FILE)
    if path_text and not path.is_file():
        raise SettingsError(f"CCPROXY_CONFIG: config file {str(path)!r} does not exist")
    if path.is_file():
        file_values, core = _config_values(_load_toml(path), env, path)
        values.update(file_values)
    values.update(_env_values(env))
    values["cache_options"] = cache_options(values.get("cache_options", CacheConfig()), env)
    values["ignored_settings"] = _ignored_settings(env, process_env)
    values.update({key: value for key, value in overrides.items() if value is not None})
    provider = values.get("provider", DEFAULT_PROVIDER)
    values["legacy_configured"] = legacy_configured(env, core, values.get("plugin_options", {}).get(provider, {}))
    values["environ"] = env
    settings = Settings(**values)
    validate_settings(settings)
    return settings


# A DNS name (underscores allowed: Docker service names have them), or one label such as `localhost`.
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)


def is_host_name(text: str) -> bool:
    """An IP address (IPv6 with or without brackets) or a DNS name, without a port."""
    try:
        ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        return bool(_HOST_NAME.fullmatch(text))
    return True


def validate_settings(settings: Settings) -> None:
    """Raise SettingsError for the first invalid value, naming the setting users know it by (or the table and key
    of plugins.toml)."""
    plan = backend_plan(settings)
    parse_routes(dict(settings.routes), plan.backends)
    if not is_host_name(settings.host) or settings.host.startswith("["):
        raise SettingsError(
            f"HOST: expected an IP address or a host name (IPv6 without brackets), got {settings.host!r}"
        )
    if not 0 < settings.port < 65536:
        raise SettingsError(f"PORT: expected 1-65535, got {settings.port}")
    if settings.log_level.upper() not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {settings.log_level!r}")
    if settings.workers < 1:
        raise SettingsError(f"WEB_CONCURRENCY: expected at least 1 worker, got {settings.workers}")
    for name in ("big_model", "small_model"):
        if not getattr(settings, name).strip():
            raise SettingsError(f"{name.upper()}_NAME: must not be empty")
    for name, seconds in (("REQUEST_TIMEOUT", settings.request_timeout), ("CONNECT_TIMEOUT", settings.connect_timeout)):
        if not seconds > 0:
            raise SettingsError(f"{name}: expected a positive number of seconds, got {seconds}")
    _validate_edge(settings)
    _validate_operations(settings)
    if settings.cache == NO_CACHE and settings.cache_options.responses:
        raise SettingsError("RESPONSE_CACHE: the response cache needs a cache backend, and CACHE_BACKEND is none")


def _validate_operations(settings: Settings) -> None:
    """Issue 11's settings: log format and files, client keys (the [auth] table is checked by ccproxy/keys.py)."""
    if settings.log_format is not None and settings.log_format.lower() not in LOG_FORMATS:
        raise SettingsError(f"LOG_FORMAT: expected json or text, got {settings.log_format!r}")
    if settings.log_file_max_bytes < 0 or settings.log_file_backups < 0:
        raise SettingsError("LOG_FILE_MAX_BYTES / LOG_FILE_BACKUPS: expected 0 or more (0 = no rotation)")
    _validate_limits(settings)
    keys = [("CCPROXY_API_KEYS", key) for key in settings.api_keys]
    keys += [("CCPROXY_ADMIN_KEY", settings.admin_key)] if settings.admin_key is not None else []
    for name, key in keys:
        if len(key) < MIN_CLIENT_KEY_CHARS or any(c.isspace() or not c.isprintable() for c in key):
            raise SettingsError(
                f"{name}: a key needs at least {MIN_CLIENT_KEY_CHARS} printable characters without spaces "
                "(e.g. openssl rand -hex 24)"
            )


MIN_BODY_LIMIT = 1024  # below this not even a small Claude Code request fits


def _validate_limits(settings: Settings) -> None:
    if settings.max_concurrent_requests < 0:
        raise SettingsError("MAX_CONCURRENT_REQUESTS: expected 0 (no cap) or more")
    for name, seconds in (("OVERLOAD_WAIT", settings.overload_wait), ("SHUTDOWN_GRACE", settings.shutdown_grace)):
        if seconds < 0:
            raise SettingsError(f"{name}: expected 0 or more seconds, got {seconds}")
    for name, value in (
        ("MAX_REQUEST_BODY_BYTES", settings.max_request_body_bytes),
        ("MAX_UPSTREAM_BODY_BYTES", settings.max_upstream_body_bytes),
        ("MAX_SSE_LINE_BYTES", settings.max_sse_line_bytes),
    ):
        if value < MIN_BODY_LIMIT:
            raise SettingsError(f"{name}: expected at least {MIN_BODY_LIMIT} bytes, got {value}")


def backend_plan(settings: Settings) -> BackendPlan:
    """The backends to build and the default routes (ccproxy/legacy.py); the legacy `default` backend is checked
    the way OPENAI_BASE_URL and the key always were, with the same messages."""
    legacy = legacy_values(settings, configured=settings.legacy_configured)
    if makes_legacy_default(settings.backend_tables, legacy):
        _validate_upstream(settings)
    return plan_backends(
        settings.backend_tables,
        legacy,
        request_timeout=settings.request_timeout,
        connect_timeout=settings.connect_timeout,
    )


def _validate_upstream(settings: Settings) -> None:
    shown = display_url(settings.base_url)
    try:
        parts = urlsplit(settings.base_url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid or any(c.isspace() for c in settings.base_url) or parts.query or parts.fragment:
        raise SettingsError(f"OPENAI_BASE_URL: expected an http(s) URL like {OPENAI_BASE_URL}, got {shown!r}")
    if "@" in parts.path:  # `user:pa/ss@host` parses as host `user`, port `pa`... : never send or log that
        raise SettingsError(
            f"OPENAI_BASE_URL: '@' after the host in {shown!r}; percent-encode / ? # @ and % in a user name or password"
        )
    upstream_auth(settings.base_url, settings.api_key, "OPENAI_BASE_URL")
    # Whether a key is needed is legacy.legacy_backend's question (it knows the [plugins.<provider>] table's key).
    if settings.api_key and any(c.isspace() or not c.isprintable() for c in settings.api_key):
        raise SettingsError("OPENAI_API_KEY: contains a space, line break or control character (a stray quote?)")


def _validate_edge(settings: Settings) -> None:
    for name in settings.allowed_hosts:
        if name != "*" and not is_host_name(name):
            raise SettingsError(
                f"ALLOWED_HOSTS: {name!r} is not a host name; list names without a port (any port is accepted), "
                "or * to accept any Host"
            )
    for origin in settings.allowed_origins:
        try:
            parts = urlsplit(origin)
            valid = bool(parts.scheme and parts.hostname) and parts.port != 0
        except ValueError:
            valid = False
        if not valid or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
            raise SettingsError(
                f"ALLOWED_ORIGINS: {origin!r} is not an origin; list each as scheme://host[:port], "
                "e.g. http://localhost:3000"
            )


# --------------------------------------------------------------------------------------------- issue 10: [cache]
NO_CACHE = "none"  # CACHE_BACKEND=none: nothing is cached (ccproxy/default_plugins/null_cache.py)
# Environment name -> (key path in the [cache] table, kind of value). They override the table's keys.
CACHE_ENV: dict[str, tuple[tuple[str, ...], str]] = {
    "REDIS_URL": (("url",), "text"),
    "RESPONSE_CACHE": (("responses",), "bool"),
    "RESPONSE_CACHE_TTL": (("response_ttl",), "seconds"),
    "RESPONSE_CACHE_WAIT": (("dedupe_wait",), "seconds"),
    "CACHE_WARMUP_ENABLED": (("warmup", "enabled"), "bool"),
    "CACHE_WARMUP_FILE_PATH": (("warmup", "file_path"), "text"),
    "CACHE_WARMUP_MAX_ITEMS": (("warmup", "max_items"), "int"),
    "CACHE_WARMUP_ON_STARTUP": (("warmup", "on_startup"), "bool"),
    "CACHE_WARMUP_AUTO_SAVE_POPULAR": (("warmup", "auto_save_popular"), "bool"),
    "CACHE_WARMUP_POPULARITY_THRESHOLD": (("warmup", "popularity_threshold"), "int"),
    "CACHE_WARMUP_SAVE_INTERVAL_SECONDS": (("warmup", "save_interval_seconds"), "seconds"),
}


def cache_options(table: CacheConfig, env: Mapping[str, str]) -> CacheConfig:
    """The [cache] table with the CACHE_ENV variables laid over it; an invalid value is named the way it was set."""
    values: dict[str, Any] = table.model_dump(exclude_unset=True)
    set_by: dict[str, str] = {}
    for name, (path, kind) in CACHE_ENV.items():
        text = env.get(name, "")
        if text == "":
            continue
        target = values
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = _cache_env_value(name, text, kind)
        set_by[dotted(("cache", *path))] = name
    try:
        return CacheConfig.model_validate(values)
    except ValidationError as exc:
        line = format_validation_error(exc, prefix="cache")
        where = line.partition(":")[0]
        raise SettingsError(set_by[where] + line[len(where) :] if where in set_by else line) from None


def _cache_env_value(name: str, text: str, kind: str) -> Any:
    value = text.strip()
    if kind == "bool":
        if value.lower() not in BOOLEAN_WORDS:
            raise SettingsError(f"{name}: expected on or off, got {text!r}")
        return value.lower() in ("1", "true", "yes", "on")
    if kind == "seconds":
        number = _as_float(value)
        if number is None:
            raise SettingsError(f"{name}: expected a number of seconds, got {text!r}")
        return number
    if kind == "int":
        if not re.fullmatch(r"[+-]?\d+", value):
            raise SettingsError(f"{name}: expected a whole number, got {text!r}")
        return int(value)
    return value
