"""Virtual keys: what clients of the gateway authenticate with instead of provider keys.

    store = VirtualKeyStore(store, settings)
    key, secret = await store.create(VirtualKeySpec(name="ci", user_id="alice", models=["gpt-4o*"]))
    # secret ("sk-llmr-...") is shown once; Redis keeps only its SHA-256
    key = await store.verify(secret)          # None when unknown, revoked or expired
    await store.revoke(key.id)

A virtual key has allowed models (names or glob patterns; none means every model), optional
``rpm``/``tpm`` budgets of its own, a user id (the per-user limit applies to it) and optional tags
that restrict which provider keys may serve it. Records live under ``{<prefix>:vk}`` (see
kernel/redis_keys.py): ``key:<sha256>`` holds the record, ``index`` maps id -> digest for listing.

A worker trusts a verified key for ``GATEWAY_VKEY_CACHE_SECONDS``; revocation still holds at once
everywhere, because it also sets a marker that the limits script checks on every request.

Virtual keys live only in Redis: while the store is degraded (kernel/failover.py) keys verified
before keep working, others are answered 503 ``store_unavailable``, and keys cannot be created,
listed or revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kernel import jsonio
from kernel.errors import StoreError
from kernel.lru import LRU
from kernel.masking import mask_secret
from kernel.store import Store
from kernel.text import control_char_problem
from kernel.validation import parse_request
from keys.budgets import BudgetBook
from lua.usage_records import BudgetRecord, budget_field, usd_to_nanos

#: Every virtual key starts so (the masking patterns recognise it as a key).
PREFIX = "sk-llmr-"
#: Entries of the verification cache (least recently used out first: bounds memory under a flood).
CACHE_LIMIT = 10_000
#: How often a worker reads the store's clock for virtual-key times (see VirtualKeyStore._now).
CLOCK_CHECK_SECONDS = 60.0
#: Seconds an unknown key is remembered as unknown (a client retrying a bad key costs no reads).
NEGATIVE_CACHE_SECONDS = 1.0
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$"


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class VirtualKeySpec(BaseModel):
    """What the admin API and ``vkeys create`` accept; errors name the field."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    user_id: str | None = Field(None, pattern=ID_PATTERN)
    team: str | None = Field(None, pattern=ID_PATTERN)
    models: list[str] = Field(default_factory=list, max_length=1000)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    tags: dict[str, str] = Field(default_factory=dict)
    expires_in: float | None = Field(None, gt=0, description="seconds from now")
    #: A USD budget of the key's own (README "Budgets"), per day or month of a time zone.
    budget_usd: float | None = Field(None, gt=0, le=1e9)
    budget_period: Literal["day", "month"] = "month"
    budget_timezone: str = "UTC"

    @field_validator("budget_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as UTC)") from None
        return value

    @field_validator("name", "models", "tags")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        texts = [value] if isinstance(value, str) else list(value)
        if isinstance(value, dict):
            texts += list(value.values())
        for text in texts:
            problem = control_char_problem(text)
            if problem is not None:
                raise ValueError(problem)
        return value

    @classmethod
    def parse(cls, data: Any) -> VirtualKeySpec:
        return parse_request(cls, data)


@dataclass(frozen=True)
class VirtualKey:
    """A virtual key's record. Holds no secret: ``hint`` is the key's masked form."""

    id: str
    name: str = ""
    user_id: str | None = None
    #: The team the key's calls count for (usage records, team budgets).
    team: str | None = None
    models: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    hint: str = ""

    @property
    def user(self) -> str:
        """Whom the call is attributed to: the key's user, else the key itself (the per-user
        limit counts only a key's own user_id: router/gateway/auth.py, Caller.named_user)."""
        return self.user_id or f"vk:{self.id}"

    def allows(self, model: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model, p) for p in self.models)

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def public(self) -> dict[str, Any]:
        """The record as the admin API and the CLI show it."""
        return {
            "id": self.id,
            "name": self.name,
            "user_id": self.user_id,
            "team": self.team,
            "models": list(self.models),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "tags": dict(self.tags),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked": self.revoked_at is not None,
            "revoked_at": self.revoked_at,
            "key_hint": self.hint,
        }

    def to_record(self, digest: str) -> dict[str, str]:
        return {
            "id": self.id,
            "digest": digest,
            "name": self.name,
            "user_id": self.user_id or "",
            "team": self.team or "",
            "models": jsonio.dumps(list(self.models)).decode(),
            "rpm": str(self.rpm or ""),
            "tpm": str(self.tpm or ""),
            "tags": jsonio.dumps(self.tags).decode(),
            "created_at": repr(self.created_at),
            "expires_at": repr(self.expires_at) if self.expires_at else "",
            "revoked_at": "",
            "hint": self.hint,
        }

    @classmethod
    def from_record(cls, raw: dict[str, str]) -> VirtualKey:
        def number(name: str) -> float | None:
            return float(raw[name]) if raw.get(name) else None

        return cls(
            id=raw["id"],
            name=raw.get("name", ""),
            user_id=raw.get("user_id") or None,
            team=raw.get("team") or None,
            models=tuple(jsonio.loads(raw.get("models") or "[]")),
            rpm=int(raw["rpm"]) if raw.get("rpm") else None,
            tpm=int(raw["tpm"]) if raw.get("tpm") else None,
            tags=dict(jsonio.loads(raw.get("tags") or "{}")),
            created_at=float(raw.get("created_at") or 0),
            expires_at=number("expires_at"),
            revoked_at=number("revoked_at"),
            hint=raw.get("hint", ""),
        )


class VirtualKeyStore:
    """Virtual keys in the store: create, list, revoke, and verify (cached briefly)."""

    def __init__(self, store: Store, *, cache_seconds: float = 10.0) -> None:
        self.store = store
        #: How long a verified key is trusted before it is read again (GATEWAY_VKEY_CACHE_SECONDS).
        self.cache_seconds = cache_seconds
        #: keyed by what callers present (digests): bounded, least recently used out first
        self._cache: LRU[str, tuple[float, VirtualKey | None]] = LRU(CACHE_LIMIT)
        #: The store's clock minus this host's, and when (monotonic) it was last read.
        self._offset = 0.0
        self._offset_read = float("-inf")
        #: reads in flight by digest: requests that find a key's cache entry expired together
        #: share one read instead of each sending its own
        self._reading: dict[str, asyncio.Future[VirtualKey | None]] = {}

    async def _now(self) -> float:
        """The store's clock, in which creation, expiry and revocation times are kept (every
        worker agrees on them whatever its host clock says): read with TIME at most once per
        CLOCK_CHECK_SECONDS, this host's clock plus the last offset seen in between."""
        mono = time.monotonic()
        if mono - self._offset_read >= CLOCK_CHECK_SECONDS and not self.store.degraded:
            with contextlib.suppress(StoreError):
                self._offset = await self.store.server_time() - time.time()
                self._offset_read = mono
        return time.time() + self._offset

    async def create(self, spec: VirtualKeySpec) -> tuple[VirtualKey, str]:
        """A new key; answers its record and the key itself (shown to the caller once)."""
        secret = PREFIX + secrets.token_urlsafe(32)
        now = await self._now()
        key = VirtualKey(
            id="vk-" + secrets.token_hex(6),
            name=spec.name,
            user_id=spec.user_id,
            team=spec.team,
            models=tuple(spec.models),
            rpm=spec.rpm,
            tpm=spec.tpm,
            tags=dict(spec.tags),
            created_at=now,
            expires_at=now + spec.expires_in if spec.expires_in else None,
            hint=mask_secret(secret),
        )
        digest = digest_of(secret)
        self.store.require_shared("create a virtual key")
        client, names = self.store.shared_client, self.store.keys
        if spec.budget_usd is not None:  # before the key exists: never usable without it
            budget = BudgetRecord(
                usd_to_nanos(spec.budget_usd), spec.budget_period, spec.budget_timezone
            )
            await BudgetBook(self.store, names).set(budget_field("vkey", key.id), budget)
        # record first: should the index write fail, the key was never handed out
        record = key.to_record(digest)
        await self.store.call(client.hset(names.vkey(digest), mapping=record), shared_only=True)
        await self.store.call(client.hset(names.vkey_index, key.id, digest), shared_only=True)
        return key, secret

    async def list(self) -> list[VirtualKey]:
        self.store.require_shared("list virtual keys")
        client, names = self.store.shared_client, self.store.keys
        index: dict[str, str] = await self.store.call(
            client.hgetall(names.vkey_index), shared_only=True
        )
        out = []
        for digest in index.values():
            raw = await self.store.call(client.hgetall(names.vkey(digest)), shared_only=True)
            if raw:
                out.append(VirtualKey.from_record(raw))
        return sorted(out, key=lambda k: (k.created_at, k.id))

    async def get(self, key_id: str) -> VirtualKey | None:
        self.store.require_shared("read a virtual key")
        client, names = self.store.shared_client, self.store.keys
        digest = await self.store.call(client.hget(names.vkey_index, key_id), shared_only=True)
        if not digest:
            return None
        raw = await self.store.call(client.hgetall(names.vkey(digest)), shared_only=True)
        return VirtualKey.from_record(raw) if raw else None

    async def revoke(self, key_id: str) -> VirtualKey | None:
        """Revoke a key everywhere at once; None when no key has this id."""
        self.store.require_shared("revoke a virtual key")
        client, names = self.store.shared_client, self.store.keys
        digest = await self.store.call(client.hget(names.vkey_index, key_id), shared_only=True)
        if not digest:
            return None
        # the marker first: from this instant the limits script refuses the key in every worker
        await self.store.call(client.set(names.rl_vkey_revoked(key_id), "1"), shared_only=True)
        revoked_at = client.hset(names.vkey(digest), "revoked_at", repr(await self._now()))
        await self.store.call(revoked_at, shared_only=True)
        self._cache.clear()
        return await self.get(key_id)

    async def verify(self, secret: str) -> VirtualKey | None:
        """The usable key ``secret`` stands for, or None (unknown, revoked or expired).

        While the store is degraded a key verified before keeps working (its cached record, even
        past ``cache_seconds``); one that cannot be verified raises StoreError (a 503 with
        Retry-After: never a 401 that would make a client drop a valid key).
        """
        if not secret.startswith(PREFIX):
            return None
        digest = digest_of(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if self.store.degraded:
            if cached is None or (cached[1] is None and cached[0] <= now):
                self.store.require_shared("verify the virtual key")
            assert cached is not None
            key = cached[1]
        elif cached is None or cached[0] <= now:
            key = await self._read_once(digest, now)
        else:
            key = cached[1]
        return key if key is not None and key.usable(await self._now()) else None

    async def _read_once(self, digest: str, now: float) -> VirtualKey | None:
        """The key read from the store and cached; callers that ask while a read of the same
        digest is in flight wait for that one (a caller that goes away does not cancel it)."""
        reading = self._reading.get(digest)
        if reading is None:
            reading = asyncio.ensure_future(self._read_and_cache(digest, now))
            self._reading[digest] = reading
            reading.add_done_callback(lambda done: self._read_done(digest, done))
        return await asyncio.shield(reading)

    def _read_done(self, digest: str, done: asyncio.Future[VirtualKey | None]) -> None:
        self._reading.pop(digest, None)
        if not done.cancelled():
            done.exception()  # retrieved: its callers (if any are left) got it

    async def _read_and_cache(self, digest: str, now: float) -> VirtualKey | None:
        key = await self._read(digest)
        ttl = self.cache_seconds if key is not None else NEGATIVE_CACHE_SECONDS
        self._cache.put(digest, (now + ttl, key))  # kept past its ttl for degraded mode
        return key

    async def _read(self, digest: str) -> VirtualKey | None:
        command = self.store.shared_client.hgetall(self.store.keys.vkey(digest))
        raw = await self.store.call(command, shared_only=True)
        if not raw or not hmac.compare_digest(raw.get("digest", ""), digest):
            return None
        return VirtualKey.from_record(raw)
