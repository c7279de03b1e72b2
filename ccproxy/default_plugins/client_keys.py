"""Built-in client keys: the authenticator, the per-key model allow-list, and rpm / tpm / budget limits.

Off (nothing registered, no per-request cost) unless CCPROXY_API_KEYS or `[[auth.keys]]` configure keys.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ccproxy.context import PRINCIPAL
from ccproxy.errors import ProxyError
from ccproxy.events import RequestRecord
from ccproxy.hookspecs import RegisterAuthenticator, RegisterGuardrail, RegisterObserver, hookimpl
from ccproxy.interfaces import (
    LATER,
    Authenticator,
    AuthRequest,
    Guardrail,
    GuardrailContext,
    Later,
    Observer,
    Principal,
)
from ccproxy.keys import ADMIN_KEY_ID, ClientKey, KeyTable, presented_key
from ccproxy.quota import LimitStore, MemoryLimitStore, period_bounds
from ccproxy.settings import Settings

if TYPE_CHECKING:
    from ccproxy.state import AppState

ADMIN_PRINCIPAL = Principal(key_id=ADMIN_KEY_ID, name="admin", extra={"admin": True})
_PERIOD_WORDS = {"day": "today (UTC)", "month": "this month (UTC)"}


def principal_of(client: ClientKey) -> Principal:
    extra: dict[str, Any] = {}
    if client.budget_usd is not None:
        extra = {"budget_usd": client.budget_usd, "budget_period": client.budget_period}
    return Principal(
        key_id=client.key_id,
        name=client.name,
        models=client.models,
        rpm=client.rpm or None,
        tpm=client.tpm or None,
        extra=extra,
    )


def rate_limited(message: str, seconds: float) -> ProxyError:
    return ProxyError(message, status=429, headers={"retry-after": str(max(1, math.ceil(seconds)))})


class KeyLimits(Observer):
    """Checks a key's rpm, tpm and budget before a request and counts its tokens and cost after it."""

    def __init__(
        self,
        table: KeyTable,
        store: LimitStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.store = store
        self.clock = clock
        self.wall = wall

    async def check(self, client: ClientKey) -> None:
        """Raise 429 rate_limit_error with retry-after when the key is over a limit; else count this request."""
        name = client.key_id
        label, ends = period_bounds(client.budget_period, self.wall()) if client.budget_usd is not None else ("", 0.0)
        refusal = await self.store.check(
            self.clock(),
            tpm=("tpm:" + name, client.tpm) if client.tpm else None,
            budget=(f"budget:{name}:{label}", client.budget_usd) if client.budget_usd is not None else None,
            rpm=("rpm:" + name, client.rpm) if client.rpm else None,
        )
        if refusal is None:
            return
        limit, value = refusal
        if limit == "budget":
            raise rate_limited(
                f"key {client.name!r} has spent its budget of ${client.budget_usd:g} for "
                f"{_PERIOD_WORDS[client.budget_period]} (${value:.4f}); it renews at the start of the next "
                f"{client.budget_period}",
                ends - self.wall(),
            )
        what = f"{client.tpm} tokens" if limit == "tpm" else f"{client.rpm} requests"
        raise rate_limited(f"key {client.name!r} is over its limit of {what} per minute; retry in {value:.0f} s", value)

    def request_done(self, record: RequestRecord) -> None:
        """Count the tokens and cost of a finished request against its key's tpm and budget."""
        client = self.table.by_id.get(record.key_id or "")
        if client is None:
            return
        tokens = None
        if client.tpm:
            used = record.input_tokens + record.output_tokens + record.cache_read_tokens + record.cache_write_tokens
            if used:
                tokens = ("tpm:" + client.key_id, float(used))
        cost = None
        if client.budget_usd is not None and record.cost_usd:
            label, ends = period_bounds(client.budget_period, self.wall())
            cost = (f"budget:{client.key_id}:{label}", record.cost_usd, ends)
        if tokens is not None or cost is not None:
            self.store.record(self.clock(), tokens=tokens, cost=cost)


class ClientKeyAuthenticator(Authenticator):
    """A Principal for a configured client key (or the admin key); None for anything else (the 401)."""

    name = "client_keys"

    def __init__(self, table: KeyTable, limits: KeyLimits | None) -> None:
        self.table = table
        self.limits = limits
        # key id -> the key's Principal, and the key itself when its requests are counted (rpm, tpm, budget)
        self._entries = {
            client.key_id: (principal_of(client), client if client.limited and limits is not None else None)
            for client in table.by_id.values()
        }

    def authenticate_now(self, request: AuthRequest) -> Principal | Later | None:
        """The key's Principal at once, unless its requests are counted (rpm, tpm, budget): the store is asked then,
        which may wait (Redis), so `authenticate` answers."""
        presented = presented_key(request.headers)
        if presented is None:
            return None
        client = self.table.client(presented)
        if client is None:
            return ADMIN_PRINCIPAL if self.table.is_admin(presented) else None
        principal, limited = self._entries[client.key_id]
        return LATER if limited is not None else principal

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        presented = presented_key(request.headers)
        if presented is None:
            return None
        client = self.table.client(presented)
        if client is None:
            return ADMIN_PRINCIPAL if self.table.is_admin(presented) else None
        principal, limited = self._entries[client.key_id]
        if limited is not None and self.limits is not None:
            await self.limits.check(limited)
        return principal


class KeyModelAllowList(Guardrail):
    """Refuse a requested model outside the key's `models` globs (case-insensitive) with 403 permission_error."""

    name = "key_models"
    amends_tools = False
    amends_messages = False

    async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        principal = PRINCIPAL.get()
        if principal is None or principal.models is None:
            return
        model = str(body.get("model", ""))
        lowered = model.lower()
        if not any(fnmatchcase(lowered, pattern.lower()) for pattern in principal.models):
            allowed = ", ".join(principal.models)
            message = f"key {principal.name!r} may not use model {model[:100]!r}; allowed: {allowed}"
            raise ProxyError(message, status=403)


class ClientKeysPlugin:
    """Registers what the configured keys need, and nothing when none are configured."""

    def __init__(self, settings: Settings, store: LimitStore | None = None) -> None:
        self.table = KeyTable.from_settings(settings)
        limited = any(client.limited for client in self.table.by_id.values())
        self.limits = KeyLimits(self.table, store or MemoryLimitStore()) if limited else None

    @hookimpl
    def ccproxy_register_authenticators(self, register: RegisterAuthenticator) -> None:
        if self.table:
            register(ClientKeyAuthenticator(self.table, self.limits))

    @hookimpl
    def ccproxy_register_guardrails(self, register: RegisterGuardrail) -> None:
        if any(client.models is not None for client in self.table.by_id.values()):
            register(KeyModelAllowList())

    @hookimpl
    def ccproxy_register_observers(self, register: RegisterObserver) -> None:
        if self.limits is not None:
            register(self.limits)

    @hookimpl
    def ccproxy_startup(self, state: AppState) -> None:
        """With a shared cache (Redis), the keys' rpm, tpm and budgets count for every worker and instance."""
        if self.limits is not None:
            shared = state.cache.shared_limit_store()
            if shared is not None:
                self.limits.store = shared

    @hookimpl
    async def ccproxy_shutdown(self, state: AppState) -> None:
        """What finished requests still have on their way to the store is counted before the cache closes."""
        if self.limits is not None:
            await self.limits.store.flush()


def plugin_for(settings: Settings) -> ClientKeysPlugin:
    return ClientKeysPlugin(settings)
