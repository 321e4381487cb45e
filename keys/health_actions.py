"""What happens to a key's health: a call's outcome settled, or an operator's action.

Health lives in Redis (keys/engine.py, lua/settle.lua): a cooldown set by one process is honoured
by every other at once. Each change of a key's state is logged once, by the process that made it;
durations are measured against the store's clock. The README's "Keys and health" section documents
the states.
"""

from __future__ import annotations

from typing import Any

from kernel.errors import ProviderConnectionError, ProviderTimeoutError, StoreError
from kernel.text import check_plain_config
from keys.engine import SettleResult
from keys.outcomes import OutcomeKind, outcome_of
from keys.pool import KeyPool, log
from keys.selection import KeySelection
from lua.usage_records import UsageArgs


class HealthActions:
    """Settles calls on the pool's keys and carries out operators' health actions."""

    def __init__(self, pool: KeyPool) -> None:
        self.pool = pool

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
        """Settle a call that worked (``KeyManager.record_success``); True when settled here."""
        try:
            result = await self.pool.engine.settle(
                selection.reservation,
                actual_tokens,
                "success",
                provider_limits=provider_limits,
                hold=hold,
                provider_room=provider_room,
                provider_tolerance=provider_tolerance,
                cost_nanos=cost_nanos,
                usage=usage,
                said=said,
                split=split,
            )
        except StoreError as exc:
            log.error("could not settle a reservation", key=selection.masked_key, error=str(exc))
            return False
        if not result.settled and result.note == "expired":
            log.warning(
                "reservation expired before its call was settled: charged at its estimate",
                key=selection.masked_key,
                model=selection.model,
            )
        warn_above(selection, result.above)
        if result.changed:
            log.info(
                "key healthy again",
                key=selection.masked_key,
                state=result.state,
                previous=result.previous_state,
            )
        return result.settled

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
        """Record how a call failed; answers the outcome (unreachable, rate_limited, auth, ...)."""
        outcome = outcome_of(error)
        try:
            result = await self.pool.engine.settle(
                selection.reservation,
                actual_tokens,
                outcome.kind,
                retry_after=outcome.retry_after,
                scope=outcome.scope,
                error_class=outcome.error_class,
                provider_limits=provider_limits,
                cost_nanos=None if _maybe_billed(error, outcome.kind) else cost_nanos,
                said=said,
            )
        except StoreError as exc:
            log.error("could not record a failed call", key=selection.masked_key, error=str(exc))
            return outcome.kind
        warn_above(selection, result.above)
        if result.settled:  # a repeated or late settle changed nothing: nothing to log
            self._log_transition(selection, outcome.kind, result)
        return outcome.kind

    async def release(self, selection: KeySelection) -> bool:
        return await self.pool.engine.release(selection.reservation)

    async def extend_reservation(self, selection: KeySelection) -> str:
        """Hold the reservation another TTL (``KeyManager.extend_reservation``)."""
        try:
            return await self.pool.engine.extend(selection.reservation)
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
                f"{self.pool.settings.CIRCUIT_BREAKER_THRESHOLD} failures",
                key=key,
                until=until,
            )

    # -- an operator's action --------------------------------------------------------------------
    async def mark_key_unhealthy(
        self, key_id: str, cooldown_seconds: float | None, reason: str
    ) -> dict[str, Any]:
        """Cool a key down (``KeyManager.mark_key_unhealthy``)."""
        pool = self.pool
        await pool.ready()
        pool.require(key_id)
        check_plain_config(reason, "reason", key_id)
        pool.store.require_shared("cool a key down")
        seconds = (
            cooldown_seconds
            if cooldown_seconds is not None
            else pool.settings.RATE_LIMIT_COOLDOWN_SECONDS
        )
        result = await pool.engine.cooldown(key_id, seconds, reason)
        log.warning(
            "key cooled down by operator", key=pool.masked(key_id), seconds=seconds, reason=reason
        )
        return result

    async def clear_cooldown(self, key_id: str) -> dict[str, Any]:
        """End a key's cooldown, open circuit and provider blocks (not an auth disable)."""
        await self.pool.ready()
        self.pool.require(key_id)
        self.pool.store.require_shared("clear a cooldown")
        result = await self.pool.engine.clear_cooldown(key_id)
        log.info("cooldown cleared", key=self.pool.masked(key_id))
        return result


def warn_above(selection: KeySelection, above: str) -> None:
    """Log the figures the key is configured above, as the settle that learned them said
    (``rpm=120>60;tpm=...``): once per bucket and figure, by the process that learned it."""
    if not above:
        return
    pairs = dict(item.split("=", 1) for item in above.split(";") if "=" in item)
    log.warning(
        f"{selection.key.provider} key {selection.masked_key} is configured above the limits its "
        f"provider reports ({', '.join(f'{k} {v}' for k, v in pairs.items())}): it runs at the "
        "provider's",
        key=selection.masked_key,
        model=selection.model,
        limits=above,
    )


def _maybe_billed(error: BaseException, kind: OutcomeKind) -> bool:
    """A failure the provider may still bill (it may have answered): a cancelled call, a timeout
    after the request was sent, a connection lost after it. Budgets count these at the estimate."""
    if kind == "cancelled":
        return True
    if isinstance(error, ProviderTimeoutError):
        return True
    return isinstance(error, ProviderConnectionError) and error.reached_provider
