"""Leases opened and settled, and ``execute_with_retry`` (document 001) over them.

    open     the model's chain (aliases, fallbacks) -> the first served model with room:
             KeyManager.select_key with ``tokens`` and the worst-case cost on the budgets
             (no room anywhere: AllKeysExhaustedError with retry_after); while the lease is
             open its reservation is kept alive (router/keepalive.py)
    success  settled with the usage the caller recorded (else the estimate, ``usage_reported``
             false, at its worst-case cost) and its one usage record, in the same script run
    failure  the SDK's exception classified (router/sdk_errors.py) and recorded like the router's
             own failures (cooldown on 429, disabled on 401/403, breaker on 5xx and timeouts),
             one usage record; then the ORIGINAL exception goes on (``lease.error`` has the
             classification). An exception that is no provider's failure (the caller's code)
             keeps the reservation charged and the key's health untouched.

The settle goes through the key manager's settle queue as a chat call's (keys/settle_queue.py):
with ``SETTLE_MODE=deferred`` a success's (and a cancelled or failed-by-its-code lease's) is sent
after the block ends, without the caller waiting, except a key's first success here
(router/attempt.py ``send_success``); a provider's failure is waited for, so that the next attempt
sees the key's health. It runs exactly once, shielded from the caller's cancellation.

``execute_with_retry(fn)`` runs ``fn(lease)`` on a fresh lease per attempt: 429, 401/403,
unreachable -> the next key at once; 5xx, 529, timeouts -> back off with jitter, next key;
400s and the caller's own exceptions are raised at once. Bounded by ``MAX_ATTEMPTS`` and
``RETRY_BUDGET_SECONDS``, like the router's calls.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from kernel.errors import (
    AllKeysExhaustedError,
    BadRequestError,
    CapacityError,
    ClientRequestError,
    ModelNotAvailableError,
    SecretStoreError,
)
from kernel.log import get_logger
from kernel.usage_record import Attribution
from keys.manager import KeyManager, KeySelection
from lua.usage_records import nanos_to_usd
from router.answers import AttemptRecord, CallSummary, failure_answer
from router.keepalive import ReservationKeeper
from router.lease import KINDS, Lease
from router.provider_limits import limits_json
from router.providers import Usage
from router.sdk_errors import provider_error_of
from router.sdk_usage import usage_from
from router.usage_budgets import budget_alerts, budget_fields
from router.usage_log import UsageLog

if TYPE_CHECKING:
    from router.dispatch import Dispatcher

log = get_logger("router.lease")

BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0


class LeaseRunner:
    """Opens and settles the leases of one RequestRouter."""

    def __init__(self, dispatcher: Dispatcher, usage: UsageLog) -> None:
        self.dispatcher = dispatcher
        self.manager: KeyManager = dispatcher.manager
        self.settings = dispatcher.settings
        self.usage = usage

    @asynccontextmanager
    async def lease(
        self,
        model: str | None,
        tokens: int | None,
        *,
        kind: str = "chat",
        exclude: Sequence[str] = (),
        tags: dict[str, str] | None = None,
        attribution: Attribution | None = None,
        request_id: str | None = None,
    ) -> AsyncIterator[Lease]:
        lease = await self.open(model, tokens, kind, exclude, tags, attribution, request_id)
        keeper = ReservationKeeper(self.manager, lease.selection)
        keeper.start()  # a lease may outlive the reservation's TTL (a long SDK stream)
        try:
            yield lease
        except BaseException as exc:
            try:  # shielded from its keeper's stop on: a caller cancelled now loses nothing
                await asyncio.shield(self._end(keeper, lease, exc))
            except Exception as problem:  # the caller's exception is the one that goes on
                log.warning("a lease's failure could not be recorded", error=str(problem))
            raise
        else:
            await asyncio.shield(self._end(keeper, lease, None))
        finally:
            await keeper.stop()
            await lease.close_clients()

    async def _end(
        self, keeper: ReservationKeeper, lease: Lease, exc: BaseException | None
    ) -> None:
        """The lease's one settle: its keeper stopped first, then success or failure."""
        await keeper.stop()
        if exc is None:
            await self.succeed(lease)
        else:
            await self.fail(lease, exc)

    # -- opening ---------------------------------------------------------------------------------
    async def open(
        self,
        model: str | None,
        tokens: int | None,
        kind: str,
        exclude: Sequence[str],
        tags: dict[str, str] | None,
        attribution: Attribution | None,
        request_id: str | None,
    ) -> Lease:
        estimate = self._estimate(tokens, kind)
        requested = model or self.dispatcher.routing.config.default_model
        requested = requested or self.manager.default_model()
        summary = CallSummary(
            requested_model=requested,
            request_id=request_id or os.urandom(16).hex(),
            attribution=attribution or Attribution(),
        )
        skip = list(exclude)
        while True:  # a key whose secret cannot be read is disabled: the next one
            selection, cost = await self._reserve(requested, estimate, kind, skip, tags, summary)
            try:
                secret = await self.manager.get_secret(selection)
            except SecretStoreError:
                await self.manager.release(selection)
                await self.manager.engine.disable(selection.key.key_id, reason="secret")
                skip.append(selection.key.key_id)
                continue
            return self._lease(selection, secret, summary, kind, estimate, cost)

    def _estimate(self, tokens: int | None, kind: str) -> int:
        if kind not in KINDS:
            raise ClientRequestError(
                f"lease: kind must be one of {', '.join(KINDS)}, not {kind!r}", param="kind"
            )
        if tokens is None:
            return self.settings.EXPECTED_COMPLETION_TOKENS
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ClientRequestError("lease: tokens must be a whole number >= 0", param="tokens")
        return tokens

    async def _reserve(
        self,
        requested: str,
        estimate: int,
        kind: str,
        exclude: Sequence[str],
        tags: dict[str, str] | None,
        summary: CallSummary,
    ) -> tuple[KeySelection, int | None]:
        """The first model of the chain with room: its reservation and worst-case cost."""
        served = [m for m in self.dispatcher.chain(requested) if self.dispatcher.served(m)]
        if not served:
            raise ModelNotAvailableError(requested, self.dispatcher.served_models())
        refused: CapacityError | None = None
        for model in served:
            cost = self._cost(model, estimate, kind)
            try:
                selection = await self.manager.select_key(
                    model,
                    estimate,
                    exclude=exclude,
                    tags=tags,
                    margin=self.settings.RESERVE_MARGIN_SECONDS,
                    budgets=budget_fields(summary.attribution),
                    cost_nanos=cost,
                )
            except CapacityError as exc:  # no room (or too large) on this model: the next one
                refused = _earlier(refused, exc)
                summary.no_room += 1
                continue
            if selection.reservation.alerts:
                budget_alerts(
                    selection.reservation.alerts, summary.attribution, self.usage.alert_hooks
                )
            return selection, cost
        assert refused is not None
        raise refused

    def _cost(self, model: str, tokens: int, kind: str) -> int | None:
        """The worst case: an embedding's tokens are all input, others priced as output."""
        if kind == "embedding":
            return self.usage.estimate_nanos(model, tokens, 0)
        return self.usage.estimate_nanos(model, 0, tokens)

    def _lease(
        self,
        selection: KeySelection,
        secret: str,
        summary: CallSummary,
        kind: str,
        estimate: int,
        cost: int | None,
    ) -> Lease:
        key = selection.key
        attempt = AttemptRecord(selection.model, key.key_id, key.provider, "success")
        attempt.started = time.monotonic()
        summary.attempts.append(attempt)
        summary.model, summary.provider = selection.model, key.provider
        summary.key_id, summary.key = key.key_id, selection.masked_key
        summary.degraded = selection.reservation.degraded
        return Lease(
            selection,
            secret,
            summary,
            kind=kind,
            estimate=estimate,
            timeout=self.settings.REQUEST_TIMEOUT_SECONDS,
            cost_nanos=cost,
        )

    # -- settling --------------------------------------------------------------------------------
    async def succeed(self, lease: Lease) -> None:
        """Settle with the recorded usage (else the estimate at its worst-case cost)."""
        summary, selection = lease.summary, lease.selection
        _finish_attempt(summary)
        usage, reported = lease.usage, lease.usage is not None
        if usage is None:
            usage = Usage(lease.estimate, 0, total_tokens=lease.estimate)
        cost = self.usage.cost_nanos(lease.model, usage) if reported else lease.cost_nanos
        summary.cost = None if cost is None else nanos_to_usd(cost)
        record = self.usage.record(summary, success=True, usage=usage, usage_reported=reported)
        summary.usage_record = record
        args = None
        if self.usage.enabled and not selection.reservation.degraded:
            args = self.usage.args(record, cost)
        actual = usage.prompt_tokens + usage.completion_tokens if reported else None
        # the settle writes the record; if it cannot, it goes the background way
        summary.recorded = args is not None

        async def settle() -> None:
            settled = await self.manager.record_success(
                selection, actual, cost_nanos=cost, usage=args
            )
            if not settled and args is not None:
                self.usage.unsettled(record, summary)

        # as a chat call's: queued (SETTLE_MODE=deferred) unless the key's first answer here
        await self.dispatcher.caller.send_success(selection.key.key_id, settle)
        self.usage.emit(record, summary)

    async def fail(self, lease: Lease, exc: BaseException) -> None:
        """Record how the lease's call failed (router/sdk_errors.py), and its usage record."""
        error = provider_error_of(exc, lease.provider, lease.secret)
        if error is None and lease.usage is not None:  # answered: the caller's code failed after
            await self.succeed(lease)
            return
        summary, attempt = lease.summary, _finish_attempt(lease.summary)
        selection, settles = lease.selection, self.manager.settles
        if error is None:  # may have reached the provider: charged, the key's health untouched;
            # queued as a cancelled chat call's (nothing waits for it)
            await settles.submit(
                selection.key.key_id,
                lambda: self.manager.record_failure(
                    selection, asyncio.CancelledError(), cost_nanos=None
                ),
            )
            attempt.outcome = "cancelled"
            if isinstance(exc, asyncio.CancelledError):
                self.usage.abandoned(summary)
            else:
                self.usage.finish(failure_answer(exc, summary), summary)
            return
        lease.error = error
        limits = limits_json(error.rate_limits)
        # in order behind the key's earlier settles, and waited for: the next attempt (and
        # every other caller's pick) must see the key's new health
        kind = await settles.run(
            selection.key.key_id,
            lambda: self.manager.record_failure(selection, error, provider_limits=limits),
        )
        attempt.outcome, attempt.error_type = kind, error.error_type
        self.usage.finish(failure_answer(error, summary), summary)

    # -- execute_with_retry ----------------------------------------------------------------------
    async def execute(
        self,
        fn: Callable[[Lease], Any],
        model: str | None,
        tokens: int | None,
        max_attempts: int | None,
        options: dict[str, Any],
    ) -> Any:
        """Run ``fn(lease)`` with rotation (module docstring); its answer, or the last error."""
        attempts = max_attempts or self.settings.MAX_ATTEMPTS
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ClientRequestError("max_attempts must be a whole number >= 1", "max_attempts")
        deadline = time.monotonic() + self.settings.RETRY_BUDGET_SECONDS
        failed: list[str] = list(options.pop("exclude", ()))
        last: BaseException | None = None
        for attempt in range(attempts):
            if attempt and time.monotonic() > deadline:
                break
            lease: Lease | None = None
            try:
                async with self.lease(model, tokens, exclude=failed, **options) as lease:
                    return await _run(fn, lease)
            except AllKeysExhaustedError as exc:
                if last is not None and exc.__cause__ is None:
                    raise exc from last
                raise
            except Exception as exc:
                if lease is None or not _retryable(lease):
                    raise
                last = exc
                failed.append(lease.key_id)
                if not _rotate_now(lease):
                    await _back_off(attempt, deadline)
        assert last is not None
        raise last


async def _run(fn: Callable[[Lease], Any], lease: Lease) -> Any:
    """``fn(lease)``: a coroutine function awaited, a blocking one in a thread; a response it
    answers records its usage when the caller recorded none."""
    if inspect.iscoroutinefunction(fn):
        result = await fn(lease)
    else:
        result = await asyncio.to_thread(fn, lease)
        if inspect.isawaitable(result):
            result = await result
    if lease.usage is None:
        usage = usage_from(result)
        if usage is not None:
            lease.record(usage)
    return result


def _retryable(lease: Lease) -> bool:
    """The lease failed at the provider, not because of the request (a 400 is final)."""
    return lease.error is not None and not isinstance(lease.error, BadRequestError)


def _rotate_now(lease: Lease) -> bool:
    attempt = lease.summary.attempts[-1]
    return attempt.outcome in ("rate_limited", "auth", "unreachable")


async def _back_off(attempt: int, deadline: float) -> None:
    pause = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
    await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))


def _finish_attempt(summary: CallSummary) -> AttemptRecord:
    attempt = summary.attempts[-1]
    attempt.latency_ms = (time.monotonic() - attempt.started) * 1000
    return attempt


def _earlier(a: CapacityError | None, b: CapacityError) -> CapacityError:
    """Of two refusals, the one whose room comes back first (one with a time before none)."""
    if a is None:
        return b
    after_a = getattr(a, "retry_after", None)
    after_b = getattr(b, "retry_after", None)
    if after_b is not None and (after_a is None or after_b < after_a):
        return b
    return a
