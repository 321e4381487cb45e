"""KeyManager: which key serves a request, every key's health, live key management, status.

    manager = get_key_manager(key_store_path="keys.json")
    selection = await manager.select_key(model_preference="gpt-4o", tokens_needed=1200)
    secret = await manager.get_secret(selection)           # never in logs or reprs
    ...call the provider...
    await manager.record_success(selection, actual_tokens=830)   # or record_failure(selection, error)

Selection reserves capacity through the capacity engine (one Lua call) with the configured
strategy, so every process sharing the store honours the same limits, cooldowns and circuits.
Health lives in Redis too (keys/engine.py, lua/settle.lua): a cooldown set by one process is
honoured by every other at once. The README's "Keys and health" section documents the states.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kernel.errors import (
    AllKeysExhaustedError,
    ConfigError,
    KeyNotFoundError,
    KeyUnavailability,
    ProviderError,
    StoreError,
    provider_error_class,
)
from kernel.log import get_logger
from kernel.lru import LRU
from kernel.masking import mask_secret
from kernel.redis_check import check_redis_settings
from kernel.settings import Settings
from kernel.store import Store, create_store
from kernel.text import check_plain_config
from keys.config import KeyConfig, load_key_config, resolve_keys_path, save_keys_file
from keys.discovery import KeyDiscovery
from keys.engine import (
    SERVING_CACHE_MODELS,
    CapacityEngine,
    HealthPolicy,
    Reservation,
    SettleResult,
)
from keys.models import APIKey
from keys.outcomes import OutcomeKind, outcome_of
from keys.overrides import Overrides
from keys.secret_store import SecretChanges, SecretStore, create_secret_store
from keys.status import HEALTHY, health_entry, key_state, key_status, stats_entry

log = get_logger("keys.manager")

#: How often a process checks whether another one changed keys at run time.
OVERRIDES_CHECK_SECONDS = 1.0
#: Keys examined to explain an exhausted pool (the error path only).
EXPLAIN_LIMIT = 50
#: Reasons of an exhausted pool that may be an upstream failure rather than limits.
UPSTREAM_REASONS = ("circuit_open", "probing", "cooldown")


@dataclass(frozen=True)
class KeySelection:
    """A reservation on one key plus the key's metadata. Holds no secret."""

    reservation: Reservation
    key: APIKey
    masked_key: str
    strategy: str

    @property
    def key_id(self) -> str:
        return self.key.key_id

    @property
    def model(self) -> str:
        return self.reservation.model

    @property
    def tokens(self) -> int:
        return self.reservation.tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key.key_id,
            "masked_key": self.masked_key,
            "provider": self.key.provider,
            "model": self.reservation.model,
            "tokens": self.reservation.tokens,
            "reservation_id": self.reservation.reservation_id,
            "quota_group": self.key.group,
            "tier": self.reservation.tier,
            "tags": dict(self.key.tags),
            "strategy": self.strategy,
        }

    def __getitem__(self, name: str) -> Any:  # document 003: key_info['key_id']
        return self.as_dict()[name]


class KeyManager:
    """Selection, health and live management of one pool of keys."""

    def __init__(
        self,
        *,
        key_store_path: str | Path | None = None,
        settings: Settings | None = None,
        store: Store | None = None,
        secret_store: SecretStore | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Any = None,
    ) -> None:
        self.environ = environ
        self.settings = settings or Settings.from_env(environ)
        self.key_store_path = key_store_path
        self.store = store or create_store(self.settings)
        s = self.settings
        policy = HealthPolicy(
            cooldown_seconds=s.RATE_LIMIT_COOLDOWN_SECONDS,
            cooldown_factor=s.COOLDOWN_BACKOFF_FACTOR,
            cooldown_max_seconds=s.COOLDOWN_MAX_SECONDS,
            breaker_threshold=s.CIRCUIT_BREAKER_THRESHOLD,
            breaker_timeout_seconds=s.CIRCUIT_BREAKER_TIMEOUT_SECONDS,
            unreachable_seconds=s.UNREACHABLE_COOLDOWN_SECONDS,
            unreachable_max_seconds=s.UNREACHABLE_COOLDOWN_MAX_SECONDS,
        )
        self.engine = CapacityEngine(
            self.store, reservation_ttl=s.RESERVATION_TTL_SECONDS, policy=policy, clock=clock
        )
        self.secrets = secret_store or create_secret_store(s, environ)
        self.overrides = Overrides(self.store)
        self.config = KeyConfig(keys=[])
        self._discovery: KeyDiscovery | None = None
        self._sources: dict[str, str] = {}
        self._masked: dict[str, str] = {}
        #: strategy per index (keys.models.model_index): bounded by the configuration
        self._strategies: LRU[str, str] = LRU(SERVING_CACHE_MODELS)
        self._version = -1
        self._version_checked = 0.0
        self._lock = asyncio.Lock()
        self._started = False

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load every key source, index the pool, start the secrets' background refresh."""
        async with self._lock:
            if self._started:
                return
            await self.store.check()  # open failure mode: an unreachable Redis means degraded
            if not self.store.degraded:
                await check_redis_settings(self.store)
            if self.store.failover is not None and self._reload_on_recovery not in (
                self.store.failover.on_recover
            ):
                self.store.failover.on_recover.append(self._reload_on_recovery)
            await self._load(enable_auth_disabled=False)
            self.secrets.subscribe(self._on_secret_changes)
            await self.secrets.start()
            self._started = True

    async def close(self) -> None:
        await self.secrets.close()
        await self.store.close()
        self._started = False

    async def _ready(self) -> None:
        if not self._started:
            await self.start()
        if self.store.degraded:  # the local store knows no run-time changes: keep the pool
            return
        if time.monotonic() - self._version_checked >= OVERRIDES_CHECK_SECONDS:
            self._version_checked = time.monotonic()
            try:
                changed = await self.overrides.version() != self._version
            except StoreError as exc:  # checked again in a second; requests go on meanwhile
                log.warning("could not check for key changes", error=str(exc))
                return
            if changed and not self.store.degraded:
                async with self._lock:
                    await self._load(enable_auth_disabled=False)

    def _reload_on_recovery(self) -> None:
        """Back on the shared store after degraded mode: reload from it at the next request (its
        run-time key changes, and every model's records synced there again)."""
        self._version = -1
        self._version_checked = 0.0

    async def _load(self, *, enable_auth_disabled: bool) -> None:
        """(Re)build the pool: keys.json + environment + discovered secrets + run-time overrides."""
        version = await self.overrides.version()
        config = load_key_config(self.key_store_path, environ=self.environ, settings=self.settings)
        keys = {key.key_id: key for key in config.keys}
        origin = dict(config.origins)
        if config.sources:
            self._discovery = KeyDiscovery(self.secrets, list(config.sources))
            for key in await self._discovery.discover():
                keys.setdefault(key.key_id, key)
                origin.setdefault(key.key_id, "discovered")
        for key_id, changed in (await self.overrides.load()).items():
            if changed is None:
                keys.pop(key_id, None)
            else:
                keys[key_id] = changed
                origin[key_id] = "runtime"
        gone = set(self.engine.keys) - set(keys)
        await self.engine.configure(keys.values())
        for key_id in gone:
            self.secrets.forget(key_id)
        if enable_auth_disabled:
            for key_id in keys:
                health = await self.engine.health(key_id)
                if health["state"] == "disabled" and health["reason"] != "manual":
                    await self.engine.enable(key_id)
                    log.info(
                        "key re-enabled by reload", key=self.masked(key_id), reason=health["reason"]
                    )
        self.config = config
        self._sources = origin
        self._strategies.clear()
        self._version = version

    # -- keys ------------------------------------------------------------------------------------
    @property
    def keys(self) -> dict[str, APIKey]:
        return self.engine.keys

    def masked(self, key_id: str) -> str:
        """The key's masked secret once known (``sk-proj-abc...xyz1``), else its id."""
        return self._masked.get(key_id, key_id)

    def default_model(self) -> str:
        if self.settings.DEFAULT_MODEL:
            return self.settings.DEFAULT_MODEL
        for key in self.keys.values():
            if key.active:
                return key.model_name
        raise AllKeysExhaustedError(
            "(default)", retry_at=None, now=time.time(), reason="no API keys configured"
        )

    def strategy_for_model(self, model: str) -> str:
        """The configured strategy of the model's provider; else round robin for document 001's
        environment keys and capacity-aware for everything else."""
        index = self.engine.index_of(model)
        cached = self._strategies.get(index)
        if cached:
            return cached
        serving = [key for key, _, _ in self.engine.serving(model)]
        providers = {("openai" if k.provider == "azure" else k.provider) for k in serving}
        strategy: str | None = None
        if len(providers) == 1:
            provider = providers.pop()
            strategy = self.settings.strategy_for(provider)
            if (
                strategy is None
                and serving
                and all(self._sources.get(k.key_id, "").startswith("env:") for k in serving)
            ):
                strategy = "round_robin"
        strategy = strategy or self.settings.KEY_ROTATION_STRATEGY or "capacity"
        self._strategies.put(index, strategy)
        return strategy

    # -- selection -------------------------------------------------------------------------------
    async def select_key(
        self,
        model_preference: str | None = None,
        tokens_needed: int = 0,
        *,
        tags: dict[str, str] | None = None,
        exclude: Sequence[str] = (),
        strategy: str | None = None,
        wait: float = 0.0,
        margin: float | None = None,
    ) -> KeySelection:
        """Reserve 1 request and ``tokens_needed`` tokens on a healthy key of the model.

        Waits up to ``wait`` seconds for room; raises AllKeysExhaustedError saying which keys,
        why and until when, or RequestTooLargeError when no key could ever fit the request.
        When every key is out because its provider failed (open circuits, a probe in flight,
        unreachable endpoints) it raises at once, the error's ``upstream`` saying what failed:
        waiting would only postpone the next probe's answer.
        ``margin``: seconds a limit-bound request waits past its exact room (the router passes
        ``RESERVE_MARGIN_SECONDS``; see lua/lib_pool.lua); default none.
        """
        await self._ready()
        model = model_preference or self.default_model()
        strategy = strategy or self.strategy_for_model(model)
        deadline = time.monotonic() + max(0.0, wait)
        held: list[KeyUnavailability] = []  # keys refused by the holdover's local limits
        while True:
            try:
                reservation = await self.engine.reserve(
                    model,
                    tokens_needed,
                    strategy=strategy,
                    exclude=[*exclude, *(h.key_id for h in held)],
                    tags=tags,
                    margin=margin,
                )
            except AllKeysExhaustedError as exc:
                exc = _with_holdover(exc, held)
                held = []
                pause = exc.retry_after
                if (
                    pause is not None
                    and time.monotonic() + pause <= deadline
                    and await self._upstream_failure(model, exc) is None
                ):
                    await asyncio.sleep(pause + random.uniform(0, 0.01))
                    continue
                raise await self._explain(model, exc) from None
            if self.store.failover is not None and self.store.failover.holdover:
                refused = await self.engine.hold_locally(
                    reservation, strategy=strategy, margin=margin
                )
                if refused is not None:
                    await self.engine.release(reservation)
                    held.append(refused)
                    continue
            key = self.engine.key(reservation.key_id)
            if key is None:  # removed while we reserved: give it back, pick again
                await self.engine.release(reservation)
                continue
            selection = KeySelection(reservation, key, self.masked(key.key_id), strategy)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "key selected", key=selection.masked_key, model=model, tokens=tokens_needed
                )
            return selection

    async def _explain(self, model: str, exc: AllKeysExhaustedError) -> AllKeysExhaustedError:
        """The engine's answer (the keys it examined), completed with the model's other keys:
        disabled keys are no longer indexed, so only their health says why."""
        listed = {k.key_id for k in exc.keys}
        missing = [k.key_id for k, _, _ in self.engine.serving(model) if k.key_id not in listed]
        missing = missing[: max(0, EXPLAIN_LIMIT - len(listed))]
        snap = await self.engine.snapshot(missing)
        reasons = list(exc.keys)
        for key_id in missing:
            state, reason, until = key_state(self.keys[key_id], snap[key_id])
            reasons.append(KeyUnavailability(key_id, reason or state, until))
        return AllKeysExhaustedError(
            model,
            retry_at=exc.retry_at,
            now=exc.now,
            reason=exc.reason,
            keys=reasons,
            upstream=await self._upstream_failure(model, exc),
        )

    async def _upstream_failure(
        self, model: str, exc: AllKeysExhaustedError
    ) -> ProviderError | None:
        """When every active key of the model is out because its provider failed (an open
        circuit, a probe in flight, an unreachable endpoint's cooldown), the latest failure's
        class with the time until the next probe; else None (limits, a 429, an operator)."""
        if exc.retry_at is None or exc.reason not in UPSTREAM_REASONS:
            return None
        key_ids = [k.key_id for k, _, _ in self.engine.serving(model) if k.active][:EXPLAIN_LIMIT]
        snap = await self.engine.snapshot(key_ids)
        latest: tuple[float, str] = (-1.0, "")
        failing = 0
        for key_id in key_ids:
            health, stats = snap[key_id]["health"], snap[key_id]["stats"]
            if health["state"] == "disabled":
                continue
            if not _failed_upstream(health, snap[key_id]["now"]):
                return None
            failing += 1
            latest = max(latest, (stats["last_error_at"] or 0.0, stats["last_error"] or ""))
        if not failing:
            return None
        cls = provider_error_class(latest[1])
        return cls(
            f"every key serving {model!r} is failing upstream ({failing} with "
            f"{cls.error_type}, circuit open or endpoint unreachable); "
            f"next probe in {exc.retry_after or 0.0:.1f}s",
            retry_after=exc.retry_after,
        )

    async def get_secret(self, selection: KeySelection | str) -> str:
        """The secret of the selected key (from the secret store's cache)."""
        key = selection.key if isinstance(selection, KeySelection) else self.keys[selection]
        secret = await self.secrets.get_secret(key)
        if key.key_id not in self._masked:  # masking costs more than the cached read: once per key
            self._masked[key.key_id] = mask_secret(secret)
        return secret

    # -- outcomes --------------------------------------------------------------------------------
    async def record_success(
        self,
        selection: KeySelection,
        actual_tokens: int | None = None,
        *,
        provider_limits: str = "",
        hold: float = 0.0,
        provider_room: tuple[float | None, float | None] = (None, None),
        provider_tolerance: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        """Settle a call that worked. If the store is down the answer is not lost: the
        reservation expires and stays charged at its estimate (conservative).

        ``hold``, ``provider_room`` and ``provider_tolerance``: what the provider's rate-limit
        headers said of its own buckets (``CapacityEngine.settle``); every process honours them
        at once.
        """
        try:
            result = await self.engine.settle(
                selection.reservation,
                actual_tokens,
                "success",
                provider_limits=provider_limits,
                hold=hold,
                provider_room=provider_room,
                provider_tolerance=provider_tolerance,
            )
        except StoreError as exc:
            log.error("could not settle a reservation", key=selection.masked_key, error=str(exc))
            return
        if not result.settled and result.note == "expired":
            log.warning(
                "reservation expired before its call was settled: charged at its estimate",
                key=selection.masked_key,
                model=selection.model,
            )
        if result.changed:
            log.info(
                "key healthy again",
                key=selection.masked_key,
                state=result.state,
                previous=result.previous_state,
            )

    async def record_failure(
        self,
        selection: KeySelection,
        error: BaseException,
        actual_tokens: int | None = None,
        *,
        provider_limits: str = "",
    ) -> OutcomeKind:
        """Record how a call failed; answers the outcome (unreachable, rate_limited, auth, ...)."""
        outcome = outcome_of(error)
        try:
            result = await self.engine.settle(
                selection.reservation,
                actual_tokens,
                outcome.kind,
                retry_after=outcome.retry_after,
                scope=outcome.scope,
                error_class=outcome.error_class,
                provider_limits=provider_limits,
            )
        except StoreError as exc:
            log.error("could not record a failed call", key=selection.masked_key, error=str(exc))
            return outcome.kind
        if result.settled:  # a repeated or late settle changed nothing: nothing to log
            self._log_transition(selection, outcome.kind, result)
        return outcome.kind

    async def release(self, selection: KeySelection) -> bool:
        return await self.engine.release(selection.reservation)

    async def extend_reservation(self, selection: KeySelection) -> str:
        """Hold the selection's reservation for another ``RESERVATION_TTL_SECONDS`` while its
        call runs (a long stream: router/keepalive.py). Answers what the engine found
        (``extended``, ``settled``, ``released``, ``expired``), or ``unavailable`` when the store
        could not be reached (the caller tries again later)."""
        try:
            return await self.engine.extend(selection.reservation)
        except StoreError as exc:
            log.warning("could not extend a reservation", key=selection.masked_key, error=str(exc))
            return "unavailable"

    def _log_transition(self, sel: KeySelection, outcome: str, result: SettleResult) -> None:
        """A log event for each change of the key's health; durations against the store's clock."""
        provider, key = sel.key.provider, sel.masked_key
        state, before, until = result.state, result.previous_state, result.until
        pause = max(0.0, until - result.now)
        if outcome == "rate_limited":
            log.warning(
                f"Rate limited on {provider} key {key} backing off for {pause:.0f}s",
                key=key,
                model=sel.model,
                until=until,
            )
        elif state == "disabled" and before != "disabled":
            log.warning(
                f"{provider} key {key} disabled: authentication failed", key=key, reason="auth"
            )
        elif state == "cooldown" and outcome == "unreachable":
            log.warning(
                f"{provider} key {key} unreachable: cooling down for {pause:.0f}s",
                key=key,
                model=sel.model,
                until=until,
            )
        elif state == "open" and before != "open":
            log.warning(
                f"Circuit breaker opened for {provider} key {key} after "
                f"{self.settings.CIRCUIT_BREAKER_THRESHOLD} failures",
                key=key,
                until=until,
            )

    # -- health actions --------------------------------------------------------------------------
    async def mark_key_unhealthy(
        self, key_id: str, cooldown_seconds: float | None = None, reason: str = "manual"
    ) -> dict[str, Any]:
        """Cool a key down (document 004); every process stops using it at once."""
        await self._ready()
        self._require(key_id)
        check_plain_config(reason, "reason", key_id)
        self.store.require_shared("cool a key down")
        seconds = (
            cooldown_seconds
            if cooldown_seconds is not None
            else self.settings.RATE_LIMIT_COOLDOWN_SECONDS
        )
        result = await self.engine.cooldown(key_id, seconds, reason)
        log.warning(
            "key cooled down by operator", key=self.masked(key_id), seconds=seconds, reason=reason
        )
        return result

    async def clear_cooldown(self, key_id: str) -> dict[str, Any]:
        """End a key's cooldown, open circuit and provider blocks (not an auth disable)."""
        await self._ready()
        self._require(key_id)
        self.store.require_shared("clear a cooldown")
        result = await self.engine.clear_cooldown(key_id)
        log.info("cooldown cleared", key=self.masked(key_id))
        return result

    def _require(self, key_id: str) -> APIKey:
        key = self.keys.get(key_id)
        if key is None:
            raise KeyNotFoundError(key_id)
        return key

    # -- live management -------------------------------------------------------------------------
    async def add_key(self, key: APIKey, *, persist: bool = False) -> APIKey:
        """Add a key to the pool of every process (its secret comes from the secret store)."""
        await self._ready()
        if key.key_id in self.keys:
            raise ConfigError(
                f"key id {key.key_id!r} already exists; use update_key",
                entry=key.key_id,
                field="key_id",
            )
        return await self._put(key, persist, "key added")

    async def update_key(self, key_id: str, *, persist: bool = False, **changes: Any) -> APIKey:
        """Change a key's metadata (limits, models, tags, active ...) without restart."""
        await self._ready()
        current = self._require(key_id)
        data = {**current.metadata(), **changes, "updated_at": time.time()}
        try:
            updated = APIKey.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(
                err["msg"], entry=key_id, field=".".join(map(str, err["loc"])) or None
            ) from None
        return await self._put(updated, persist, "key updated")

    async def deactivate_key(self, key_id: str) -> APIKey:
        return await self.update_key(key_id, active=False)

    async def activate_key(self, key_id: str) -> APIKey:
        return await self.update_key(key_id, active=True)

    async def remove_key(self, key_id: str, *, persist: bool = False) -> None:
        """Remove a key: no new request starts on it; requests in flight on it finish."""
        await self._ready()
        self._require(key_id)
        async with self._lock:
            self._version = await self.overrides.remove(key_id)
            await self.engine.remove_keys([key_id])
            self.secrets.forget(key_id)
        log.info("key removed", key=self.masked(key_id))
        if persist:
            await self.save_keys()

    async def _put(self, key: APIKey, persist: bool, event: str) -> APIKey:
        async with self._lock:
            self._version = await self.overrides.put(key)
            await self.engine.upsert_keys([key])
            self._sources.setdefault(key.key_id, "runtime")
            self._strategies.clear()
        log.info(event, key=self.masked(key.key_id), provider=key.provider, model=key.model_name)
        if persist:
            await self.save_keys()
        return key

    async def reload_keys(self) -> int:
        """Re-read keys.json, the environment and the secret stores (document 004's reload).

        An operator's reload also revives keys disabled after an auth failure: they come back
        only this way, or when their secret is replaced.
        """
        await self.secrets.refresh()
        async with self._lock:
            await self._load(enable_auth_disabled=True)
        log.info("keys reloaded", total=len(self.keys))
        return len(self.keys)

    async def save_keys(self, path: str | Path | None = None) -> Path:
        """Write the pool's metadata (never secrets) to keys.json; keys from provider variables
        stay in the environment. Run-time changes now in the file stop being overrides."""
        await self._ready()
        target = (
            Path(path)
            if path
            else resolve_keys_path(self.key_store_path, self.settings) or Path("keys.json")
        )
        saved = [
            k for k in self.keys.values() if not self._sources.get(k.key_id, "").startswith("env:")
        ]
        extra: dict[str, Any] = dict(self.config.routing)
        save_keys_file(target, saved, extra or None)
        if target == (self.config.path or target):
            async with self._lock:
                self._version = await self.overrides.clear([k.key_id for k in saved])
        log.info("keys saved", path=str(target), count=len(saved))
        return target

    async def _on_secret_changes(self, changes: SecretChanges) -> None:
        """A refresh added, changed or removed secrets: follow it without restart."""
        if self._discovery is not None:
            update = self._discovery.apply(changes)
            if update.add:
                await self.engine.upsert_keys(update.add)
            if update.remove:
                await self.engine.remove_keys(list(update.remove))
        for key_id in changes.changed | changes.added:
            if key_id in self.keys and (await self.engine.health(key_id))["state"] == "disabled":
                await self.engine.enable(key_id)  # the secret was replaced: give it a chance
                log.info("key re-enabled: secret replaced", key=key_id)
            self._masked.pop(key_id, None)

    # -- status ----------------------------------------------------------------------------------
    async def _snapshot(self, key_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        await self._ready()
        ids = list(key_ids) if key_ids is not None else list(self.keys)
        return await self.engine.snapshot(ids)

    async def get_key_status(self, key_id: str) -> dict[str, Any]:
        """Document 004: state, usage against limits and counters of one key (masked)."""
        key = self._require(key_id)
        snap = await self._snapshot([key_id])
        return key_status(key, snap[key_id], self.masked(key_id))

    async def get_all_key_statuses(self) -> list[dict[str, Any]]:
        snap = await self._snapshot()
        return [key_status(self.keys[k], snap[k], self.masked(k)) for k in snap]

    async def get_health_status(self) -> dict[str, dict[str, Any]]:
        """Document 003: per key id, model, active, last used, counts and whether cooling down."""
        snap = await self._snapshot()
        return {k: health_entry(self.keys[k], snap[k]) for k in snap}

    async def get_stats(self) -> dict[str, Any]:
        """Document 001's statistics: totals, the strategy and per masked key counters."""
        snap = await self._snapshot()
        entries = {self.masked(k): stats_entry(self.keys[k], snap[k]) for k in snap}
        healthy = sum(1 for k in snap if key_state(self.keys[k], snap[k])[0] == HEALTHY)
        strategies = sorted({self.strategy_for_model(m) for m in self._models()})
        return {
            "total_keys": len(snap),
            "healthy_keys": healthy,
            "rotation_strategy": strategies[0]
            if len(strategies) == 1
            else (strategies or ["capacity"]),
            "keys": entries,
        }

    def _models(self) -> list[str]:
        return sorted({k.model_name for k in self.keys.values()})

    async def get_rpm_usage(self, key_id: str) -> dict[str, Any]:
        """Document 004: requests in the last minute against the limit."""
        return dict((await self.get_key_status(key_id))["rpm_usage"])

    async def get_tpm_usage(self, key_id: str) -> dict[str, Any]:
        """Document 004: tokens in the last minute against the limit."""
        return dict((await self.get_key_status(key_id))["tpm_usage"])

    async def health_check(self) -> dict[str, Any]:
        """Store, keys and secret store health for ``RequestRouter.health_check``."""
        out: dict[str, Any] = {"healthy": True}
        try:
            out["store"] = {
                **self.store.describe(),
                "ok": True,
                "latency_ms": round(await self.store.ping(), 3),
            }
        except StoreError as exc:
            out["store"] = {**self.store.describe(), "ok": False, "error": str(exc)}
            if not self.store.degraded:
                out["healthy"] = False
                return out
        if self.store.degraded:  # still serving, on local limits (kernel/failover.py)
            out["degraded"] = True
        snap = await self._snapshot()
        healthy = sum(1 for k in snap if key_state(self.keys[k], snap[k])[0] == HEALTHY)
        active = sum(1 for key in self.keys.values() if key.active)
        out["keys"] = {"total": len(snap), "active": active, "healthy": healthy}
        if not active:  # nothing to serve with: not a passing health check
            out["healthy"] = False
            out["error"] = "no active API keys configured"
        out["secret_store"] = await self.secrets.health_check()
        if not out["secret_store"].get("ok", False):
            out["healthy"] = False
        return out


def _with_holdover(
    exc: AllKeysExhaustedError, held: list[KeyUnavailability]
) -> AllKeysExhaustedError:
    """No key had room: when the holdover refused some, the earliest of their retry times too."""
    if not held:
        return exc
    times = [t for t in [exc.retry_at, *(h.until for h in held)] if t is not None]
    return AllKeysExhaustedError(
        exc.model,
        retry_at=min(times) if times else None,
        now=exc.now,
        reason=held[0].reason if exc.retry_at is None else exc.reason,
        keys=[*exc.keys, *held],
    )


_manager: KeyManager | None = None


def get_key_manager(key_store_path: str | Path | None = None, **kwargs: Any) -> KeyManager:
    """The process's KeyManager (document 004's ``get_key_manager``); created on first call."""
    global _manager
    if _manager is None:
        _manager = KeyManager(key_store_path=key_store_path, **kwargs)
    return _manager


def reset_key_manager() -> None:
    """Forget the process's KeyManager (tests, or after the event loop that used it closed)."""
    global _manager
    _manager = None


def _failed_upstream(health: dict[str, Any], now: float) -> bool:
    """The key is out now because its provider failed: an open circuit or a probe in flight,
    or the cooldown of an unreachable endpoint."""
    if health["until"] <= now:
        return False
    state = health["state"]
    return state in ("open", "probing") or (
        state == "cooldown" and health["reason"] == "unreachable"
    )


__all__ = ["KeyManager", "KeySelection", "get_key_manager", "reset_key_manager"]
