"""Backend: one provider instance x its `[backends.<name>]` table x (later) its upstream; and the key rule."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ccproxy.config import BackendConfig, SettingsError, dotted, validate_table
from ccproxy.core.overflow import prompt_too_long
from ccproxy.core.plan import ModelCapabilities
from ccproxy.interfaces import BasicCredentials, Provider, ProviderConfig, ReasoningConfigurator
from ccproxy.upstream import (
    AttemptObserver,
    BreakerObserver,
    LeanUpstream,
    LimiterObserver,
    Upstream,
    UpstreamStates,
    build_upstream,
)
from ccproxy.upstream.bounds import DEFAULT_MAX_BODY
from ccproxy.upstream.errors import no_redaction

if TYPE_CHECKING:
    from ccproxy.upstream.http import AiohttpUpstream
    from ccproxy.wire import Wire

ReasoningFactory = Callable[[Mapping[str, Any]], ReasoningConfigurator]
DEFAULT_REASONING = "budget-effort"
# Direct `backend:model` requests let clients choose model names, so the capabilities cache is bounded.
CAPABILITIES_LIMIT = 4096
# Names that only resolve on a local network (RFC 6761 localhost, RFC 6762 mDNS .local, RFC 8375 home.arpa,
# ICANN's reserved .internal, and the .lan many routers hand out).
LOCAL_SUFFIXES = (".localhost", ".local", ".home.arpa", ".internal", ".lan")
# Everything up to the last `@` after `scheme://` (the scheme optional), for display_url: a password with an unencoded
# `/`, `?` or `#` makes the userinfo look like a path, so the whole stretch is masked.
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?.*@")
LEGACY_KEY_NAMES = "OPENAI_API_KEY or OPENROUTER_API_KEY"
GLOB_CHARACTERS = frozenset("*?[")


def is_local_host(host: str) -> bool:
    """An address that is not globally reachable (loopback, RFC 1918 / unique-local, link-local, the RFC 6598
    shared space Tailscale uses) or a name that cannot be public.

    Single-label names (`ollama`, `vllm` in a compose network) count as local: no public name has one label.
    """
    name = host.lower().rstrip(".")
    if not name:
        return False
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost" or "." not in name or name.endswith(LOCAL_SUFFIXES)
    return not address.is_global


def key_required(config: BackendConfig, *, needs_key: bool, base_url: str) -> bool:
    """The key rule: `api_key_required` when the table says; else the provider needs one and the host is public
    (a `user:password@` base URL brings its own credentials)."""
    if config.api_key_required is not None:
        return config.api_key_required
    parts = urlsplit(base_url)
    return needs_key and not is_local_host(parts.hostname or "") and parts.username is None


def public_url(url: str) -> str:
    """`url` without credentials: no `user:password@`, no query string (keys hide there too), no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def display_url(url: str) -> str:
    """`url` safe to print: any `user:password@` becomes `***@`."""
    return _USERINFO.sub(r"\1***@", url, count=1)


def split_credentials(url: str) -> tuple[str, BasicCredentials | None]:
    """`url` without `user:password@`, and those credentials percent-decoded (None when it carries none)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if host == parts.netloc:
        return url, None
    clean = urlunsplit(parts._replace(netloc=host))
    if not parts.username and not parts.password:
        return clean, None
    return clean, BasicCredentials(unquote(parts.username or ""), unquote(parts.password or ""))


def upstream_auth(
    base_url: str, api_key: str | None, where: str, key_names: str = LEGACY_KEY_NAMES
) -> tuple[str, BasicCredentials | None]:
    """The base URL to send to and log (credentials removed) and its basic auth; refuses a key as well."""
    clean, credentials = split_credentials(base_url)
    if credentials is not None and api_key:
        raise SettingsError(
            f"{where}: has user:password@ for basic auth, and an API key is also set ({key_names}); both would be "
            "sent in the Authorization header: keep only one of them"
        )
    return clean, credentials


def is_glob(key: str) -> bool:
    """Whether a `models."<key>"` table names a glob rather than one model."""
    return not GLOB_CHARACTERS.isdisjoint(key)


def capability_override(models: Mapping[str, Mapping[str, Any]], model: str) -> Mapping[str, Any] | None:
    """The `models."<key>"` table for upstream `model`: the one named exactly, else the first glob (in the file's
    order, like [routes]) matching the whole name or its part after the last `/`, case-insensitively."""
    exact = models.get(model)
    if exact is not None:
        return exact
    name = model.lower()
    bare = name.rsplit("/", 1)[-1]
    for key, table in models.items():
        if is_glob(key) and (fnmatchcase(name, key.lower()) or fnmatchcase(bare, key.lower())):
            return table
    return None


class Backend:
    """One named backend: its provider instance, resolved config (base_url and api_key filled in), reasoning
    configurator, capabilities per upstream model (provider answer + a `models."<model or glob>"` override,
    cached), and its way to the network, set by the app wiring: `transport` (the one aiohttp session, for provider
    calls such as listing models), `upstream` (the resilient stack around it, for requests) and `path` (appended
    to `transport`'s base URL: the provider's chat completions URL)."""

    __slots__ = (
        "_capabilities",
        "_wires",
        "config",
        "name",
        "path",
        "provider",
        "reasoning",
        "status_wait",
        "transport",
        "upstream",
    )

    def __init__(self, name: str, config: BackendConfig, provider: Provider, reasoning: ReasoningConfigurator) -> None:
        self.name = name
        self.config = config
        self.provider = provider
        self.reasoning = reasoning
        self.transport: Upstream | None = None
        self.upstream: Upstream | None = None
        self.path = ""
        # How long a request may wait for the status line: the connect and request timeouts together.
        self.status_wait = provider.config.connect_timeout + provider.config.request_timeout
        self._capabilities: dict[str, ModelCapabilities] = {}
        self._wires: dict[str, Wire | None] = {}

    def __repr__(self) -> str:
        base_url = public_url(self.config.base_url) if self.config.base_url else None
        return f"Backend({self.name!r}, provider={self.config.provider!r}, base_url={base_url!r})"

    def connect(
        self,
        states: UpstreamStates,
        on_attempt: AttemptObserver | None = None,
        *,
        on_breaker: BreakerObserver | None = None,
        on_limiter_wait: LimiterObserver | None = None,
        connection_wait: float = 1.0,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        """Build this backend's way to the network: one transport (the table's `transport`: aiohttp or the lean
        client) at the provider's base URL with its headers, timeouts and `max_connections` (or the provider's own
        in-process `transport()`), and the resilient
        stack around it from the table's retries, breaker and limits (`states`: the app's breaker and limiter
        stores; `on_*`: the observers' reporters, if any; `connection_wait` and `max_body`: OVERLOAD_WAIT and
        MAX_UPSTREAM_BODY_BYTES).

        Upstream text is not redacted here: it is redacted where it leaves the process (ccproxy/redaction.py).
        """
        provider = self.provider
        base_url = provider.config.base_url.rstrip("/")
        chat_url = provider.chat_completions_url()
        self.path = chat_url[len(base_url) :] if chat_url.startswith(base_url + "/") else chat_url
        self.transport = provider.transport() or self._network_transport(base_url, connection_wait, max_body)
        self.upstream = build_upstream(
            self.name,
            self.config,
            self.transport,
            states,
            on_attempt=on_attempt,
            on_breaker=on_breaker,
            on_limiter_wait=on_limiter_wait,
        )

    def _network_transport(self, base_url: str, connection_wait: float, max_body: int) -> Upstream:
        """The table's HTTP client to `base_url`, with the provider's headers and timeouts."""
        provider = self.provider
        kind: type[AiohttpUpstream] | type[LeanUpstream] = LeanUpstream
        if self.config.transport == "aiohttp":
            from ccproxy.upstream.http import AiohttpUpstream  # here: only then is aiohttp imported at all

            kind = AiohttpUpstream
        return kind(  # both transports honour the same bounds (ccproxy.upstream.bounds)
            base_url,
            provider.headers(),
            connect_timeout=provider.config.connect_timeout,
            read_timeout=provider.config.request_timeout,
            redact=no_redaction,
            limit_connections=self.config.max_connections,
            connection_wait=connection_wait,
            max_body=max_body,
            detect_overflow=prompt_too_long,
        )

    def forget_capabilities(self) -> None:
        """Ask the provider again on the next request: it learned something (a local server's context windows)."""
        self._capabilities = {}

    def capabilities(self, model: str) -> ModelCapabilities:
        """What `model` accepts on this backend: asked of the provider once, the table's override laid over it."""
        found = self._capabilities.get(model)
        if found is None:
            found = self.provider.capabilities(model)
            override = capability_override(self.config.models, model)
            if override:
                found = dataclasses.replace(found, **override)
            if len(self._capabilities) < CAPABILITIES_LIMIT:
                self._capabilities[model] = found
        return found

    def wire(self, model: str) -> Wire | None:
        """The API `model` is spoken to in (None: Chat Completions): asked of the provider once per model."""
        try:
            return self._wires[model]
        except KeyError:
            found = self.provider.wire(model)
            if len(self._wires) < CAPABILITIES_LIMIT:
                self._wires[model] = found
            return found


def build_backends(
    configs: Mapping[str, BackendConfig],
    providers: Mapping[str, type[Provider]],
    reasoning_factories: Mapping[str, ReasoningFactory],
    *,
    reasoning_options: Mapping[str, Any],
    env: Mapping[str, str],
    default_reasoning: str = DEFAULT_REASONING,
    reasoning_choice: str | None = None,
) -> dict[str, Backend]:
    """Every backend, in order; a SettingsError naming `backends.<name>.<key>` for the first problem.

    `env` is the environment snapshot Settings was loaded from (for a provider's `key_env_var`). Reasoning
    configurators are built once per name, from the `[reasoning]` table, and shared by the backends that use them.
    A backend's configurator: its table's `reasoning`, else `reasoning_choice` (`[reasoning] configurator`), else
    its provider's `default_reasoning`, else `default_reasoning`.
    """
    reasoning: dict[str, ReasoningConfigurator] = {}

    def configurator(name: str, where: str) -> ReasoningConfigurator:
        if name not in reasoning:
            factory = reasoning_factories.get(name)
            if factory is None:
                registered = ", ".join(sorted(reasoning_factories)) or "none"
                raise SettingsError(f"{where}: configurator {name!r} is not registered; registered: {registered}")
            try:
                reasoning[name] = factory(reasoning_options)
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"reasoning: {exc}") from None
        return reasoning[name]

    backends: dict[str, Backend] = {}
    for name, config in configs.items():
        provider_class = select_provider(providers, config)
        if config.reasoning:
            chosen = configurator(config.reasoning, config.where("reasoning"))
        elif reasoning_choice:
            chosen = configurator(reasoning_choice, "reasoning.configurator")
        else:
            chosen = configurator(provider_class.default_reasoning or default_reasoning, "reasoning")
        backends[name] = build_backend(name, config, provider_class, chosen, env)
    return backends


def select_provider(providers: Mapping[str, type[Provider]], config: BackendConfig) -> type[Provider]:
    """The installed provider class the table names."""
    found = providers.get(config.provider)
    if found is None:
        installed = ", ".join(sorted(providers)) or "none"
        hint = f" (pip install ccproxy-{config.provider})" if config.provider in ("openai", "local", "demo") else ""
        raise SettingsError(
            f"{config.where('provider')}: {config.provider!r} is not installed{hint}; installed providers: {installed}"
        )
    return found


def build_backend(
    name: str,
    config: BackendConfig,
    provider_class: type[Provider],
    reasoning: ReasoningConfigurator,
    env: Mapping[str, str],
) -> Backend:
    """One Backend: base URL and key defaulted from the provider, the key rule, options validated, provider made."""
    base_url = config.base_url or provider_class.default_base_url
    if not base_url:
        raise SettingsError(
            f"{config.where('base_url')}: not set, and provider {config.provider!r} has no default base URL"
        )
    api_key = config.api_key
    clean_url, basic_auth = upstream_auth(base_url, api_key, config.where("base_url"), _key_names(config))
    if api_key is None and provider_class.key_env_var and basic_auth is None:
        api_key = env.get(provider_class.key_env_var) or None
    if not api_key and key_required(config, needs_key=provider_class.needs_key, base_url=base_url):
        raise SettingsError(f"{config.where('api_key')}: not set; {_key_hint(config, provider_class, base_url)}")
    if api_key and any(c.isspace() or not c.isprintable() for c in api_key):
        raise SettingsError(
            f"{config.where('api_key')}: contains a space, line break or control character (a stray quote?)"
        )
    _check_windows(config)
    resolved = config.replaced(base_url=clean_url, api_key=api_key)
    # Timeouts are filled in by legacy.plan_backends; left out here, ProviderConfig's defaults apply.
    timeouts = {key: getattr(config, key) for key in ("request_timeout", "connect_timeout") if getattr(config, key)}
    provider_config = ProviderConfig(
        base_url=clean_url,
        api_key=api_key,
        options=provider_options(provider_class, config),
        name=name,
        headers=dict(config.headers),
        basic_auth=basic_auth,
        **timeouts,
    )
    try:
        provider = provider_class(provider_config)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"{config.table}: {exc}") from None
    return Backend(name, resolved, provider, reasoning)


def provider_options(provider_class: type[Provider], config: BackendConfig) -> dict[str, Any]:
    """The table's provider options, validated by the provider's `options_model` (none declared: none allowed)."""
    options = config.options
    if provider_class.options_model is not None:
        return validate_table(provider_class.options_model, options, config.table).model_dump()
    if options:
        key = next(iter(options))
        raise SettingsError(f"{config.where(key)}: unknown setting; provider {config.provider!r} takes no options")
    return {}


def _check_windows(config: BackendConfig) -> None:
    """A `context_window` override is a positive number of tokens (0 or less would refuse every request)."""
    for model, override in config.models.items():
        window = override.get("context_window")
        if window is not None and window <= 0:
            where = f"{config.table}.{dotted(('models', model, 'context_window'))}"
            raise SettingsError(f"{where}: expected a number of tokens > 0, got {window}")


def _key_names(config: BackendConfig) -> str:
    return LEGACY_KEY_NAMES if config.legacy else config.where("api_key")


def _key_hint(config: BackendConfig, provider_class: type[Provider], base_url: str) -> str:
    if config.api_key_required:
        reason = "api_key_required = true"
    else:
        reason = f"provider {config.provider!r} needs a key for {public_url(base_url)}"
    env_hint = f"set {provider_class.key_env_var} or " if provider_class.key_env_var else ""
    return f'{reason} ({env_hint}write api_key = {{"$env" = "NAME"}})'
