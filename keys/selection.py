"""Which key serves a request: reserve on one with room, or say why none has any.

Selection reserves capacity through the capacity engine (one Lua call) with the configured
strategy, so every process sharing the store honours the same limits, cooldowns and circuits.
With no room it waits (bounded, keys/room.py) or explains: the keys examined and why each is out,
and, when every key is out because its provider failed (open circuits, a probe in flight,
unreachable endpoints), that failure, at once: waiting would only postpone the next probe's answer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kernel.errors import (
    AllKeysExhaustedError,
    KeyUnavailability,
    ProviderError,
    provider_error_class,
)
from keys.engine import Reservation
from keys.models import APIKey
from keys.pool import KeyPool, log
from keys.reserve_options import ReserveOptions
from keys.room import NoRoom, RoomWait
from keys.status import key_state

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


@dataclass(frozen=True)
class SelectionRequest:
    """What one selection asks for: the model, the tokens and how to reserve them."""

    model: str
    tokens: int
    options: ReserveOptions


class Selector:
    """Reserves on the pool's keys (``KeyManager.select_key``)."""

    def __init__(self, pool: KeyPool) -> None:
        self.pool = pool

    async def select(self, request: SelectionRequest, wait: float) -> KeySelection:
        """A reservation on a key of the request's model, waiting up to ``wait`` seconds for room;
        else the explained AllKeysExhaustedError (RequestTooLargeError: it can never fit). A key
        whose limits are being learned (keys/learned.py) is waited for, whatever ``wait``, until
        its provider's first answer (at most the probe TTL: the learning call's longest hold)."""
        wait = max(0.0, wait)
        learning = max(wait, self.pool.engine.probe_ttl)
        room = RoomWait(wait, time.monotonic() + learning)
        held: list[KeyUnavailability] = []  # keys refused by the holdover's local limits

        async def attempt() -> KeySelection | NoRoom[AllKeysExhaustedError]:
            try:
                return await self._reserve(request, held)
            except AllKeysExhaustedError as exc:
                exc = _with_holdover(exc, held)
                held.clear()
                pause, learning = exc.retry_after, exc.reason == "learning"
                if (
                    room.allows(pause, learning)
                    and await self._upstream_failure(request.model, exc) is None
                ):
                    return NoRoom(exc, pause, learning)
                return NoRoom(exc, None)

        got = await room.until_room(attempt)
        if isinstance(got, NoRoom):
            raise await self._explain(request.model, got.answer) from None
        return got

    async def _reserve(
        self, request: SelectionRequest, held: list[KeyUnavailability]
    ) -> KeySelection:
        """One reservation on a key still in the pool and within the holdover's local limits;
        raises AllKeysExhaustedError when none has room."""
        engine, options = self.pool.engine, request.options
        unknown: list[str] = []  # reserved keys this pool does not know, even after a resync
        while True:
            exclude = [*options.exclude, *(h.key_id for h in held), *unknown]
            reservation = await engine.reserve(
                request.model, request.tokens, options, exclude=exclude
            )
            if await self._again(reservation, request, held):
                continue
            key = engine.key(reservation.key_id)
            if key is None:  # removed while we reserved, or added by another process since
                # this pool last looked: give it back, catch up with the pool's changes, and
                # leave it out if it is still unknown (picking it again would loop for ever)
                await engine.release(reservation)
                await self.pool.resync()
                if engine.key(reservation.key_id) is None:
                    unknown.append(reservation.key_id)
                continue
            selection = KeySelection(
                reservation, key, self.pool.masked(key.key_id), options.strategy
            )
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "key selected",
                    key=selection.masked_key,
                    model=request.model,
                    tokens=request.tokens,
                )
            return selection

    async def _again(
        self, reservation: Reservation, request: SelectionRequest, held: list[KeyUnavailability]
    ) -> bool:
        """True when ``reservation`` was given back and must be made again: it was made on
        degraded mode's local store before the budgets were written there
        (keys/budget_failover.py), or the holdover's local limits refuse it (``held`` says why)."""
        engine = self.pool.engine
        failover = self.pool.store.failover
        unchecked = reservation.degraded and not self.pool.local_budgets.ready(failover)
        if unchecked and await self.pool.write_local_budgets():
            await engine.release(reservation)
            return True
        if failover is not None and failover.holdover:
            options = request.options
            refused = await engine.hold_locally(
                reservation, strategy=options.strategy, margin=options.margin
            )
            if refused is not None:
                await engine.release(reservation)
                held.append(refused)
                return True
        return False

    async def _explain(self, model: str, exc: AllKeysExhaustedError) -> AllKeysExhaustedError:
        """The engine's answer (the keys it examined), completed with the model's other keys:
        disabled keys are no longer indexed, so only their health says why."""
        engine = self.pool.engine
        listed = {k.key_id for k in exc.keys}
        missing = [k.key_id for k, _, _ in engine.serving(model) if k.key_id not in listed]
        missing = missing[: max(0, EXPLAIN_LIMIT - len(listed))]
        snap = await engine.snapshot(missing)
        reasons = list(exc.keys)
        for key_id in missing:
            state, reason, until = key_state(self.pool.keys[key_id], snap[key_id])
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
        engine = self.pool.engine
        key_ids = [k.key_id for k, _, _ in engine.serving(model) if k.active][:EXPLAIN_LIMIT]
        snap = await engine.snapshot(key_ids)
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


def _failed_upstream(health: dict[str, Any], now: float) -> bool:
    """The key is out now because its provider failed: an open circuit or a probe in flight,
    or the cooldown of an unreachable endpoint."""
    if health["until"] <= now:
        return False
    state = health["state"]
    return state in ("open", "probing") or (
        state == "cooldown" and health["reason"] == "unreachable"
    )
