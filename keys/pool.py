"""The live pool of keys one KeyManager serves from: its parts share this state.

It owns the store, the capacity engine, the secret store and the run-time overrides, loads the pool
from every key source (keys.json, the environment, discovered secrets, overrides another process
wrote), and follows changes other processes make. Selection (keys/selection.py), health actions
(keys/health_actions.py), key administration (keys/pool_admin.py) and status (keys/status.py)
each work on one KeyPool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kernel.errors import AllKeysExhaustedError, KeyNotFoundError, StoreError
from kernel.log import get_logger
from kernel.lru import LRU
from kernel.masking import mask_secret
from kernel.redis_check import check_redis_settings
from kernel.settings import Settings
from kernel.store import Store, create_store
from keys.budget_failover import LocalBudgets
from keys.budgets import BudgetBook
from keys.config import KeyConfig, load_key_config
from keys.discovery import KeyDiscovery
from keys.engine import SERVING_CACHE_MODELS, CapacityEngine, HealthPolicy
from keys.models import APIKey
from keys.overrides import Overrides
from keys.secret_store import SecretChanges, SecretStore, create_secret_store
from keys.shards import check_pool_shards, create_engine

log = get_logger("keys.manager")

#: How often a process checks whether another one changed keys at run time.
OVERRIDES_CHECK_SECONDS = 1.0
#: How often a process reads the time zones of budgets set over the admin API.
BUDGET_ZONES_SECONDS = 60.0


def health_policy(s: Settings) -> HealthPolicy:
    """The cooldown and breaker settings the engine applies on every settle."""
    return HealthPolicy(
        cooldown_seconds=s.RATE_LIMIT_COOLDOWN_SECONDS,
        cooldown_factor=s.COOLDOWN_BACKOFF_FACTOR,
        cooldown_max_seconds=s.COOLDOWN_MAX_SECONDS,
        breaker_threshold=s.CIRCUIT_BREAKER_THRESHOLD,
        breaker_timeout_seconds=s.CIRCUIT_BREAKER_TIMEOUT_SECONDS,
        unreachable_seconds=s.UNREACHABLE_COOLDOWN_SECONDS,
        unreachable_max_seconds=s.UNREACHABLE_COOLDOWN_MAX_SECONDS,
    )


class KeyPool:
    """The keys, their sources and secrets, and the engine that holds their capacity and health."""

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
        self.engine: CapacityEngine = create_engine(
            self.store,
            self.settings.POOL_SHARDS,
            reservation_ttl=self.settings.RESERVATION_TTL_SECONDS,
            policy=health_policy(self.settings),
            clock=clock,
        )
        self.secrets = secret_store or create_secret_store(self.settings, environ)
        self.overrides = Overrides(self.store)
        #: Budgets in the store (keys/budgets.py): keys.json's and BUDGETS synced at each load.
        self.budgets = BudgetBook(self.store, self.store.keys, clock=clock)
        #: The budgets last read, for degraded mode's local store (keys/budget_failover.py).
        self.local_budgets = LocalBudgets(self.store.keys)
        self._config_zones: set[str] = set()
        self._zones_checked = 0.0
        self.config = KeyConfig(keys=[])
        self.discovery: KeyDiscovery | None = None
        #: where each key came from: ``env:VARIABLE``, ``discovered``, ``runtime`` or the file
        self.sources: dict[str, str] = {}
        self._masked: dict[str, str] = {}
        #: strategy per index (keys.models.model_index): bounded by the configuration
        self.strategies: LRU[str, str] = LRU(SERVING_CACHE_MODELS)
        #: the overrides' version this process's pool reflects (-1: reload at the next request)
        self.version = -1
        self._version_checked = 0.0
        self.lock = asyncio.Lock()
        self.started = False

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load every key source, index the pool, start the secrets' background refresh."""
        async with self.lock:
            if self.started:
                return
            await self.store.check()  # open failure mode: an unreachable Redis means degraded
            if not self.store.degraded:
                await check_redis_settings(self.store)
                await check_pool_shards(self.store, self.settings.POOL_SHARDS)
            if self.store.failover is not None and self._reload_on_recovery not in (
                self.store.failover.on_recover
            ):
                self.store.failover.on_recover.append(self._reload_on_recovery)
            await self.load(enable_auth_disabled=False)
            self.secrets.subscribe(self.on_secret_changes)
            await self.secrets.start()
            self.started = True

    async def close(self) -> None:
        await self.secrets.close()
        await self.store.close()
        self.started = False

    async def ready(self) -> None:
        """Started, and up to date with run-time key changes another process made (checked
        once a second)."""
        if not self.started:
            await self.start()
        if self.store.degraded:  # the local store knows no run-time changes: keep the pool
            await self.write_local_budgets()
            return
        if time.monotonic() - self._zones_checked >= BUDGET_ZONES_SECONDS:
            await self._budget_zones()
        if time.monotonic() - self._version_checked < OVERRIDES_CHECK_SECONDS:
            return
        self._version_checked = time.monotonic()
        try:
            changed = await self.overrides.version() != self.version
        except StoreError as exc:  # checked again in a second; requests go on meanwhile
            log.warning("could not check for key changes", error=str(exc))
            return
        if changed and not self.store.degraded:
            async with self.lock:
                await self.load(enable_auth_disabled=False)

    async def resync(self) -> None:
        """Catch up with run-time key changes now (not at the next once-a-second check)."""
        self._version_checked = 0.0
        await self.ready()

    def _reload_on_recovery(self) -> None:
        """Back on the shared store after degraded mode: reload from it at the next request (its
        run-time key changes, and every model's records synced there again)."""
        self.version = -1
        self._version_checked = 0.0

    async def load(self, *, enable_auth_disabled: bool) -> None:
        """(Re)build the pool: keys.json + environment + discovered secrets + run-time overrides."""
        version = await self.overrides.version()
        config = load_key_config(self.key_store_path, environ=self.environ, settings=self.settings)
        keys = {key.key_id: key for key in config.keys}
        origin = dict(config.origins)
        if config.sources:
            self.discovery = KeyDiscovery(self.secrets, list(config.sources))
            for key in await self.discovery.discover():
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
        await self._sync_budgets(config)
        for key_id in gone:
            self.secrets.forget(key_id)
        if enable_auth_disabled:
            await self._enable_auth_disabled(keys)
        self.config = config
        self.sources = origin
        self.strategies.clear()
        self.version = version

    async def _sync_budgets(self, config: KeyConfig) -> None:
        """Write the configured budgets (keys.json, BUDGETS) to the store; their time zones are
        the engine's calendars too. Budgets set over the admin API are left as they are."""
        specs = list(config.budgets)
        self._config_zones = {spec.timezone for spec in specs}
        self.engine.use_zones(self._config_zones)
        if specs:
            await self.budgets.sync([(spec.field, spec.record()) for spec in specs])
        await self._budget_zones()

    async def _budget_zones(self) -> None:
        """Every budget's time zone as the engine's calendars (one set over the admin API by
        another process too), and every budget with its spend for degraded mode's local store:
        read at each load and once every BUDGET_ZONES_SECONDS."""
        self._zones_checked = time.monotonic()
        try:
            snapshot = await self.budgets.snapshot()
        except StoreError as exc:
            log.warning("could not read the budgets", error=str(exc))
            return
        if not self.store.degraded:  # read on the shared store, not on the local one
            self.local_budgets.keep(snapshot)
        zones = {budget.tz for budget, _ in snapshot.values()}
        self.engine.use_zones(self._config_zones | zones)

    async def write_local_budgets(self) -> bool:
        """While degraded, the budgets last read go to the local store once per episode, at this
        process's share of what was left (keys/budget_failover.py); answers whether it has any."""
        failover = self.store.failover
        if failover is None or not failover.degraded:
            return False
        return await self.local_budgets.write(failover, await self.engine.now())

    async def _enable_auth_disabled(self, key_ids: Mapping[str, APIKey]) -> None:
        """An operator's reload revives keys disabled by the engine (not by an operator)."""
        for key_id in key_ids:
            health = await self.engine.health(key_id)
            if health["state"] == "disabled" and health["reason"] != "manual":
                await self.engine.enable(key_id)
                log.info(
                    "key re-enabled by reload", key=self.masked(key_id), reason=health["reason"]
                )

    async def on_secret_changes(self, changes: SecretChanges) -> None:
        """A refresh added, changed or removed secrets: follow it without restart."""
        if self.discovery is not None:
            update = self.discovery.apply(changes)
            if update.add:
                await self.engine.upsert_keys(update.add)
            if update.remove:
                await self.engine.remove_keys(list(update.remove))
        for key_id in changes.changed | changes.added:
            if key_id in self.keys and (await self.engine.health(key_id))["state"] == "disabled":
                await self.engine.enable(key_id)  # the secret was replaced: give it a chance
                log.info("key re-enabled: secret replaced", key=key_id)
            self._masked.pop(key_id, None)

    # -- keys ------------------------------------------------------------------------------------
    @property
    def keys(self) -> dict[str, APIKey]:
        return self.engine.keys

    def require(self, key_id: str) -> APIKey:
        key = self.keys.get(key_id)
        if key is None:
            raise KeyNotFoundError(key_id)
        return key

    def masked(self, key_id: str) -> str:
        """The key's masked secret once known (``sk-proj-abc...xyz1``), else its id."""
        return self._masked.get(key_id, key_id)

    async def secret(self, key: APIKey) -> str:
        """The key's secret (from the secret store's cache); remembers its masked form."""
        secret = await self.secrets.get_secret(key)
        if key.key_id not in self._masked:  # masking costs more than the cached read: once per key
            self._masked[key.key_id] = mask_secret(secret)
        return secret

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
        cached = self.strategies.get(index)
        if cached:
            return cached
        serving = [key for key, _, _ in self.engine.serving(model)]
        providers = {("openai" if k.provider == "azure" else k.provider) for k in serving}
        strategy: str | None = None
        if len(providers) == 1:
            strategy = self.settings.strategy_for(providers.pop())
            if strategy is None and serving and all(self.from_environment(k) for k in serving):
                strategy = "round_robin"
        strategy = strategy or self.settings.KEY_ROTATION_STRATEGY or "capacity"
        self.strategies.put(index, strategy)
        return strategy

    def from_environment(self, key: APIKey) -> bool:
        """The key came from a provider variable (``OPENAI_API_KEY`` ...), not from a file."""
        return self.sources.get(key.key_id, "").startswith("env:")
