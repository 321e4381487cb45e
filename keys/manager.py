"""KeyManager: which key serves a request, every key's health, live key management, status.

    manager = get_key_manager(key_store_path="keys.json")
    selection = await manager.select_key(model_preference="gpt-4o", tokens_needed=1200)
    secret = await manager.get_secret(selection)           # never in logs or reprs
    ...call the provider...
    await manager.record_success(selection, actual_tokens=830)   # or record_failure(selection, error)

The manager is a facade over one pool of keys (keys/pool.py: sources, secrets, the capacity engine)
and the parts that work on it, each named for what it does:

    keys/selection.py       select_key: reserve on a key with room, wait for room, explain none
    keys/health_actions.py  record_success / record_failure / release / extend_reservation, and
                            the operator's mark_key_unhealthy / clear_cooldown
    keys/pool_admin.py      add / update / (de)activate / remove keys, reload_keys, save_keys
    keys/status.py          get_key_status, get_all_key_statuses, get_health_status, get_stats,
                            health_check
    keys/settle_queue.py    ``settles``: the router's settles, sent off the answers' path; flush

Health lives in Redis (keys/engine.py, lua/settle.lua): a cooldown set by one process is honoured
by every other at once. The README's "Keys and health" section documents the states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kernel.settings import Settings
from kernel.store import Store
from keys.admission import Admission
from keys.config import KeyConfig
from keys.engine import CapacityEngine
from keys.health_actions import HealthActions
from keys.models import APIKey
from keys.outcomes import OutcomeKind
from keys.pool import KeyPool
from keys.pool_admin import PoolAdmin
from keys.pool_keys import PoolKeys
from keys.reserve_options import ReserveOptions
from keys.secret_store import SecretStore
from keys.selection import KeySelection, SelectionRequest, Selector
from keys.settle_queue import SettleQueue
from keys.status import StatusView
from lua.usage_records import UsageArgs


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
        self.pool = KeyPool(
            key_store_path=key_store_path,
            settings=settings,
            store=store,
            secret_store=secret_store,
            environ=environ,
            clock=clock,
        )
        self.selector = Selector(self.pool)
        self.health = HealthActions(self.pool)
        self.admin = PoolAdmin(self.pool)
        self.status = StatusView(self.pool)
        self._keys = PoolKeys(lambda: self.pool.keys)
        #: The calls' settles, sent off their answers' path (keys/settle_queue.py).
        self.settles = SettleQueue(
            deferred=self.pool.settings.SETTLE_MODE == "deferred",
            ordered=self.pool.store.lane is not None,
        )

    # -- the pool --------------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self.pool.settings

    @property
    def store(self) -> Store:
        return self.pool.store

    @property
    def engine(self) -> CapacityEngine:
        return self.pool.engine

    @property
    def secrets(self) -> SecretStore:
        return self.pool.secrets

    @property
    def config(self) -> KeyConfig:
        return self.pool.config

    @property
    def keys(self) -> PoolKeys:
        """The pool's keys by id, read-only: ``keys[id] = key`` raises, naming ``put_key``
        (keys/pool_keys.py); the blocking facade (keys/sync.py) takes the assignment."""
        return self._keys

    async def start(self) -> None:
        """Load every key source, index the pool, start the secrets' background refresh."""
        await self.pool.start()

    async def flush(self) -> None:
        """Wait until every settle queued so far has landed (``SETTLE_MODE=deferred``): status
        read after it shows every call made before it."""
        await self.settles.flush()

    async def close(self) -> None:
        await self.settles.flush()
        await self.pool.close()

    def masked(self, key_id: str) -> str:
        """The key's masked secret once known (``sk-proj-abc...xyz1``), else its id."""
        return self.pool.masked(key_id)

    def default_model(self) -> str:
        return self.pool.default_model()

    def strategy_for_model(self, model: str) -> str:
        """The configured strategy of the model's provider; else round robin for document 001's
        environment keys and capacity-aware for everything else."""
        return self.pool.strategy_for_model(model)

    async def get_secret(self, selection: KeySelection | str) -> str:
        """The secret of the selected key (from the secret store's cache)."""
        key = selection.key if isinstance(selection, KeySelection) else self.keys[selection]
        return await self.pool.secret(key)

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
        budgets: Sequence[str] = (),
        cost_nanos: int | None = None,
        output_tokens: int = 0,
        admission: Admission | None = None,
    ) -> KeySelection:
        """Reserve 1 request and ``tokens_needed`` tokens on a healthy key of the model.

        Waits up to ``wait`` seconds for room; raises AllKeysExhaustedError saying which keys,
        why and until when, or RequestTooLargeError when no key could ever fit the request.
        When every key is out because its provider failed (open circuits, a probe in flight,
        unreachable endpoints) it raises at once, the error's ``upstream`` saying what failed:
        waiting would only postpone the next probe's answer.
        ``margin``: seconds a limit-bound request waits past its exact room (the router passes
        ``RESERVE_MARGIN_SECONDS``; see lua/lib_pool.lua); default none.
        ``budgets``: the budget fields the call counts against (lua.usage_records.budget_field)
        and ``cost_nanos`` its worst-case cost: reserved with the key, atomically, or
        BudgetExceededError (a budget applies and the price is unknown: refused too).
        ``output_tokens``: how many of ``tokens_needed`` are the completion (charged to an
        output token limit, the rest to an input one: Anthropic's ``itpm``/``otpm``).
        ``admission``: the gateway's request limits of the call (keys/admission.py), charged with
        its first reservation; AdmissionRefusedError (nothing reserved) when they refuse.
        """
        await self.pool.ready()
        model = model_preference or self.pool.default_model()
        strategy = strategy or self.pool.strategy_for_model(model)
        options = ReserveOptions(
            strategy,
            exclude=exclude,
            tags=tags,
            margin=margin,
            budgets=budgets,
            cost_nanos=cost_nanos,
            output=output_tokens,
            admission=admission,
        )
        request = SelectionRequest(model, tokens_needed, options)
        return await self.selector.select(request, wait)

    # -- a call's outcome ------------------------------------------------------------------------
    async def record_success(
        self,
        selection: KeySelection,
        actual_tokens: int | None = None,
        *,
        provider_limits: str = "",
        hold: float = 0.0,
        provider_room: tuple[float | None, float | None] = (None, None),
        provider_tolerance: tuple[float, float] = (1.0, 1.0),
        cost_nanos: int | None = None,
        usage: UsageArgs | None = None,
        said: str = "",
        split: tuple[int | None, int | None] = (None, None),
    ) -> bool:
        """Settle a call that worked; True when this settled it. If the store is down the
        answer is not lost: the reservation expires and stays charged at its estimate
        (conservative). ``cost_nanos``: its real cost for its budgets (None: the estimate);
        ``usage``: its usage record, written in the same script run.

        ``hold``, ``provider_room`` and ``provider_tolerance``: what the provider's rate-limit
        headers said of its own buckets (``CapacityEngine.settle``); every process honours them
        at once. ``said``: the limits they reported (keys/learned.py), adopted by every process;
        ``split``: the call's actual input and output tokens.
        """
        return await self.health.record_success(
            selection,
            actual_tokens,
            provider_limits=provider_limits,
            hold=hold,
            provider_room=provider_room,
            provider_tolerance=provider_tolerance,
            cost_nanos=cost_nanos,
            usage=usage,
            said=said,
            split=split,
        )

    async def record_failure(
        self,
        selection: KeySelection,
        error: BaseException,
        actual_tokens: int | None = None,
        *,
        provider_limits: str = "",
        cost_nanos: int | None = 0,
        said: str = "",
    ) -> OutcomeKind:
        """Record how a call failed; answers the outcome (unreachable, rate_limited, auth, ...).
        ``cost_nanos``: what it cost its budgets (default nothing: a refused call is not billed;
        None = its estimate, for a call that may have been billed: cut or cancelled). ``said``:
        the limits the failure reported (a 429's headers, Gemini's quota details)."""
        return await self.health.record_failure(
            selection,
            error,
            actual_tokens,
            provider_limits=provider_limits,
            cost_nanos=cost_nanos,
            said=said,
        )

    async def release(self, selection: KeySelection) -> bool:
        return await self.health.release(selection)

    async def extend_reservation(self, selection: KeySelection) -> str:
        """Hold the selection's reservation for another ``RESERVATION_TTL_SECONDS`` while its
        call runs (a long stream: router/keepalive.py). Answers what the engine found
        (``extended``, ``settled``, ``released``, ``expired``), or ``unavailable`` when the store
        could not be reached (the caller tries again later)."""
        return await self.health.extend_reservation(selection)

    # -- health actions --------------------------------------------------------------------------
    async def mark_key_unhealthy(
        self, key_id: str, cooldown_seconds: float | None = None, reason: str = "manual"
    ) -> dict[str, Any]:
        """Cool a key down (document 004); every process stops using it at once."""
        return await self.health.mark_key_unhealthy(key_id, cooldown_seconds, reason)

    async def clear_cooldown(self, key_id: str) -> dict[str, Any]:
        """End a key's cooldown, open circuit and provider blocks (not an auth disable)."""
        return await self.health.clear_cooldown(key_id)

    # -- live management -------------------------------------------------------------------------
    async def add_key(self, key: APIKey, *, persist: bool = False) -> APIKey:
        """Add a key to the pool of every process (its secret comes from the secret store)."""
        return await self.admin.add_key(key, persist=persist)

    async def put_key(self, key: APIKey, *, persist: bool = False) -> APIKey:
        """Add ``key``, or replace the key of that id, in the pool of every process (document
        003's ``manager.keys[id] = key``); ``persist`` also writes keys.json."""
        return await self.admin.put_key(key, persist=persist)

    async def update_key(self, key_id: str, *, persist: bool = False, **changes: Any) -> APIKey:
        """Change a key's metadata (limits, models, tags, active ...) without restart."""
        return await self.admin.update_key(key_id, persist=persist, **changes)

    async def deactivate_key(self, key_id: str) -> APIKey:
        return await self.admin.update_key(key_id, active=False)

    async def activate_key(self, key_id: str) -> APIKey:
        return await self.admin.update_key(key_id, active=True)

    async def remove_key(self, key_id: str, *, persist: bool = False) -> None:
        """Remove a key: no new request starts on it; requests in flight on it finish."""
        await self.admin.remove_key(key_id, persist=persist)

    async def reload_keys(self) -> int:
        """Re-read keys.json, the environment and the secret stores (document 004's reload).

        An operator's reload also revives keys disabled after an auth failure: they come back
        only this way, or when their secret is replaced.
        """
        return await self.admin.reload_keys()

    async def save_keys(self, path: str | Path | None = None) -> Path:
        """Write the pool's metadata (never secrets) to keys.json; keys from provider variables
        stay in the environment. Run-time changes now in the file stop being overrides."""
        return await self.admin.save_keys(path)

    # -- status ----------------------------------------------------------------------------------
    async def get_key_status(self, key_id: str) -> dict[str, Any]:
        """Document 004: state, usage against limits and counters of one key (masked)."""
        return await self.status.get_key_status(key_id)

    async def get_all_key_statuses(self) -> list[dict[str, Any]]:
        return await self.status.get_all_key_statuses()

    async def get_health_status(self) -> dict[str, dict[str, Any]]:
        """Document 003: per key id, model, active, last used, counts and whether cooling down."""
        return await self.status.get_health_status()

    async def get_stats(self) -> dict[str, Any]:
        """Document 001's statistics: totals, the strategy and per masked key counters."""
        return await self.status.get_stats()

    async def get_rpm_usage(self, key_id: str) -> dict[str, Any]:
        """Document 004: requests in the last minute against the limit."""
        return dict((await self.get_key_status(key_id))["rpm_usage"])

    async def get_tpm_usage(self, key_id: str) -> dict[str, Any]:
        """Document 004: tokens in the last minute against the limit."""
        return dict((await self.get_key_status(key_id))["tpm_usage"])

    async def health_check(self) -> dict[str, Any]:
        """Store, keys and secret store health for ``RequestRouter.health_check``."""
        return await self.status.health_check()


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


__all__ = ["KeyManager", "KeySelection", "get_key_manager", "reset_key_manager"]
