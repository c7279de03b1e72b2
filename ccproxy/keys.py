"""Client keys and the admin key: parsed once from settings, looked up by a BLAKE2b digest, logged only as a key id.

Why a digest lookup is constant-time enough: the presented key is hashed first (time depends only on its length), and
only the digest meets the stored digests, in a dict lookup. How long the lookup takes can depend on the digest of
what was presented, never on how many leading characters of a real key it shares: to steer a digest towards a stored
one an attacker would need preimages of the hash. So timing tells nothing about any key, and the lookup stays O(1)
however many keys there are (a `hmac.compare_digest` loop over all keys would be O(n) and no safer). The single
admin key is compared with `hmac.compare_digest` over the two digests. The clear keys live only in Settings; this
table holds digests, and logs, records and metrics see `key_` + the first 8 hex digits of the key's SHA-256.

The lookup hash is BLAKE2b (512 bits, CPython's own implementation) rather than SHA-256 through OpenSSL: equally
preimage-resistant, and per request it cost ~1 µs where OpenSSL's SHA-256 set-up cost ~4 µs of a served request
(perf, benchmarks/README.md stop 18; both take ~0.3 µs in a tight loop, the difference is cold code).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Literal

from ccproxy.config import AuthConfig, validate_table
from ccproxy.settings import Settings, SettingsError

KEY_ID_PREFIX = "key_"
ADMIN_KEY_ID = "admin"
BEARER = "bearer "


def digest(key: str) -> bytes:
    """What keys are looked up by (see the module docstring); never shown anywhere."""
    return blake2b(key.encode()).digest()  # its full 512 bits: a digest_size argument costs ~80 ns more


def key_id(key: str) -> str:
    """The public name of a key: `key_` + 8 hex digits of its SHA-256 (what logs, records and /v1/usage show)."""
    return KEY_ID_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:8]


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: `x-api-key`, else `Authorization: Bearer <key>` (Claude Code sends either)."""
    key = headers.get("x-api-key")
    if key:
        return key
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == BEARER:
        return authorization[7:].strip() or None
    return None


@dataclass(frozen=True, slots=True)
class ClientKey:
    """One client key's identity and limits (0 / None = unlimited)."""

    key_id: str
    name: str
    models: tuple[str, ...] | None = None
    rpm: int = 0
    tpm: int = 0
    budget_usd: float | None = None
    budget_period: Literal["day", "month"] = "day"

    @property
    def limited(self) -> bool:
        """Whether requests with this key are counted at all (rate or budget)."""
        return bool(self.rpm or self.tpm or self.budget_usd is not None)


class KeyTable:
    """Digest -> ClientKey, plus the admin key's digest. Built once per app from Settings."""

    __slots__ = ("_admin", "_by_digest", "by_id")

    def __init__(self, keys: Mapping[str, ClientKey], admin_key: str | None = None) -> None:
        self._by_digest = {digest(key): client for key, client in keys.items()}
        self.by_id = {client.key_id: client for client in keys.values()}
        self._admin = digest(admin_key) if admin_key else None

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyTable:
        """CCPROXY_API_KEYS (unlimited, named `key-1`, ...) and `[[auth.keys]]`; raises SettingsError naming the key."""
        auth = auth_config(settings)
        keys: dict[str, ClientKey] = {}
        for number, key in enumerate(settings.api_keys, start=1):
            keys[key] = ClientKey(key_id=key_id(key), name=f"key-{number}")
        for entry in auth.keys:
            keys[entry.key] = ClientKey(
                key_id=key_id(entry.key),
                name=entry.name or key_id(entry.key),
                models=entry.models,
                rpm=entry.rpm,
                tpm=entry.tpm,
                budget_usd=entry.budget_usd,
                budget_period=entry.budget_period,
            )
        return cls(keys, settings.admin_key or auth.admin_key)

    def __bool__(self) -> bool:
        return bool(self._by_digest)

    @property
    def has_admin_key(self) -> bool:
        return self._admin is not None

    def client(self, presented: str) -> ClientKey | None:
        """The client key `presented` is, if any (see the module docstring for why this is constant-time enough)."""
        # The dict compares digests, not keys; a compare_digest after it would guard nothing more. `digest` inline:
        # this runs for every request.
        return self._by_digest.get(blake2b(presented.encode()).digest())

    def is_admin(self, presented: str | None) -> bool:
        return self._admin is not None and presented is not None and hmac.compare_digest(digest(presented), self._admin)


def auth_config(settings: Settings) -> AuthConfig:
    """The `[auth]` table, validated (errors name `auth.keys[0].rpm`)."""
    table: Mapping[str, Any] = settings.auth_options
    return validate_table(AuthConfig, table, "auth")


def allow_unauthenticated(settings: Settings) -> bool:
    """ALLOW_UNAUTHENTICATED / --allow-unauthenticated, else `[auth] allow_unauthenticated`, else false."""
    if settings.allow_unauthenticated is not None:
        return settings.allow_unauthenticated
    return bool(auth_config(settings).allow_unauthenticated)


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost` (what only this machine can reach)."""
    try:
        return ipaddress.ip_address(address.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return address.lower() == "localhost"


def refuse_open_bind(host: str, settings: Settings, authenticators: Sequence[object]) -> None:
    """Refuse to serve a non-loopback address when no authenticator guards /v1/* (no client keys), unless the
    operator said --allow-unauthenticated: anyone reaching the port could otherwise spend the upstream key."""
    if authenticators or is_loopback(host) or allow_unauthenticated(settings):
        return
    raise SettingsError(
        f"HOST: {host} is not a loopback address and no client keys are configured, so anyone who reaches the port "
        "could spend the upstream key: set CCPROXY_API_KEYS (or [[auth.keys]] in plugins.toml), or start with "
        "--allow-unauthenticated (ALLOW_UNAUTHENTICATED=true) when something else guards the port"
    )
