"""One frozen Settings, from defaults < plugins.toml < .env < environment < explicit arguments."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_CONFIG_FILE = "plugins.toml"
DEFAULT_ENV_FILE = ".env"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"

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
}
INT_FIELDS = frozenset({"port", "workers"})
FLOAT_FIELDS = frozenset({"request_timeout", "connect_timeout"})


class SettingsError(ValueError):
    """A missing or invalid setting; the message names it in one line."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the app factory needs. Nothing reads os.environ after this is built."""

    api_key: str | None = field(default=None, repr=False)
    base_url: str = OPENAI_BASE_URL
    big_model: str = "gpt-5"
    small_model: str = "gpt-5-mini"
    host: str = "127.0.0.1"
    port: int = 11434
    log_level: str = "INFO"
    workers: int = 1
    request_timeout: float = 600.0
    connect_timeout: float = 10.0
    provider: str = "openai"
    cache: str = "memory"
    # (glob pattern, upstream model) pairs from [routes], tried in order before the haiku/big default.
    routes: tuple[tuple[str, str], ...] = ()
    disabled_plugins: tuple[str, ...] = ()
    plugin_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    reasoning_options: Mapping[str, Any] = field(default_factory=dict)
    guardrail_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    config_path: str | None = None

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


def _coerce(name: str, value: Any, source: str) -> Any:
    try:
        if name in INT_FIELDS:
            return int(value)
        if name in FLOAT_FIELDS:
            return float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{source}: invalid value {value!r}") from None
    return str(value)


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None


def _config_values(config: Mapping[str, Any], env: Mapping[str, str], path: Path) -> dict[str, Any]:
    """Settings fields from a parsed plugins.toml."""
    values: dict[str, Any] = {"config_path": str(path)}
    core = resolve_secrets(config.get("ccproxy", {}), env, "ccproxy")
    known = {env_name.lower(): name for env_name, name in ENV_FIELDS.items()}
    known.update({"provider": "provider", "cache": "cache", "openai_api_key": "api_key"})
    for key, value in core.items():
        if key == "disabled_plugins":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SettingsError("ccproxy.disabled_plugins: expected a list of plugin names")
            values["disabled_plugins"] = tuple(value)
        elif key in known:
            values[known[key]] = _coerce(known[key], value, f"ccproxy.{key}")
        else:
            raise SettingsError(f"ccproxy.{key}: unknown setting in {path}")
    routes = config.get("routes", {})
    if not isinstance(routes, dict) or not all(isinstance(v, str) for v in routes.values()):
        raise SettingsError('routes: expected a table of "pattern" = "upstream model"')
    values["routes"] = tuple(routes.items())
    plugins = config.get("plugins", {})
    if not isinstance(plugins, dict):
        raise SettingsError("plugins: expected a table of [plugins.<name>] tables")
    values["plugin_options"] = {name: resolve_secrets(table, env, f"plugins.{name}") for name, table in plugins.items()}
    values["reasoning_options"] = resolve_secrets(config.get("reasoning", {}), env, "reasoning")
    values["guardrail_options"] = resolve_secrets(config.get("guardrails", {}), env, "guardrails")
    return values


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

    values: dict[str, Any] = {}
    path_text = config_path or env.get("CCPROXY_CONFIG")
    if path_text:
        path = Path(path_text)
        if not path.is_file():
            raise SettingsError(f"CCPROXY_CONFIG: config file {str(path)!r} does not exist")
        values.update(_config_values(_load_toml(path), env, path))
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        values.update(_config_values(_load_toml(Path(DEFAULT_CONFIG_FILE)), env, Path(DEFAULT_CONFIG_FILE)))
    values.update(_env_values(env))
    values.update({key: value for key, value in overrides.items() if value is not None})
    settings = Settings(**values)
    validate_settings(settings)
    return settings


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_settings(settings: Settings) -> None:
    """Raise SettingsError for the first invalid value, naming the setting users know it by."""
    parts = urlsplit(settings.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"OPENAI_BASE_URL: expected an http(s) URL, got {settings.base_url!r}")
    if not settings.api_key and not _is_loopback(settings.base_url):
        raise SettingsError(
            "OPENAI_API_KEY: not set (or set OPENROUTER_API_KEY); it is required for " + settings.base_url
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
    if settings.request_timeout <= 0 or settings.connect_timeout <= 0:
        raise SettingsError("REQUEST_TIMEOUT/CONNECT_TIMEOUT: must be positive")
