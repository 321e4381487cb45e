"""Each call's usage record: built once the call's outcome is known, written exactly once.

    success (the common case)  -> with the settle that already happens: one script run charges the
                                  real tokens and cost and appends the record (lua/settle.lua);
                                  a settle that fails for good sends it the background way
    anything else              -> in the background, after the answer (lua/record_usage.lua):
                                  refused before any key, failed after its last settle, degraded

Never an extra round trip on the answer's path. While the store is degraded (kernel/failover.py)
a record is kept in the process (bounded, like conversation turns) and written when Redis is back;
a call served there also charges its cost to its budgets with that replay (lua/record_usage.lua:
its settle charged only the local spend), so the shared spend counts it exactly once.
The record's fields are kernel/usage_record.py's; the README's "Usage record" table documents them.
Each finished record also goes to OpenTelemetry when enabled (router/telemetry.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from kernel.errors import StoreError
from kernel.log import get_logger
from kernel.redis_keys import RedisKeys
from kernel.settings import Settings
from kernel.store import Store
from kernel.usage_record import UsageRecord
from lua import record_usage as lua_record_usage
from lua.record_usage import BudgetCharge, RecordUsageKeys
from lua.usage_records import UsageArgs, usd_to_nanos
from router.answers import Answer, AttemptRecord, CallSummary
from router.providers import Usage
from router.usage_budgets import budget_fields

if TYPE_CHECKING:
    from kernel.prices import PriceTable

log = get_logger("router.usage")

#: Background writes in flight at most; beyond, a record is dropped (and counted, and logged).
MAX_PENDING_WRITES = 1000


class SpanSink(Protocol):
    def emit(self, record: UsageRecord) -> None: ...


class UsageLog:
    """Builds and writes the usage records of one RequestRouter's calls."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        prices: Callable[[], PriceTable],
        *,
        clock: Callable[[], float] | None = None,
        spans: SpanSink | None = None,
        offsets: Callable[[], str] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.names = RedisKeys(settings.REDIS_KEY_PREFIX, shards=settings.POOL_SHARDS)
        self._prices = prices
        self._clock = clock or time.time
        self.spans = spans
        #: The day offsets the scripts take (the budgets' calendars: CapacityEngine.day_offsets).
        self._offsets = offsets or (lambda: "")
        self._pending: set[asyncio.Task[None]] = set()
        #: Told the scope of each budget alert this router's reservations raise (metrics).
        self.alert_hooks: list[Callable[[str], None]] = []
        #: Records not written (store unreachable in closed mode, too many writes pending).
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return self.settings.USAGE_LOG

    # -- cost ----------------------------------------------------------------------------------
    def estimate_nanos(self, model: str, prompt_tokens: int, completion_tokens: int) -> int | None:
        """The worst case of a call to ``model``: what budgets reserve (None: no price known)."""
        return self._prices().worst_case_nanos(model, prompt_tokens, completion_tokens)

    def cost_nanos(self, model: str, usage: Usage) -> int | None:
        cost = self._prices().cost(
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
        return None if cost is None else cost.nanos

    # -- building ------------------------------------------------------------------------------
    def record(
        self,
        summary: CallSummary,
        *,
        success: bool,
        usage: Usage | None,
        error_type: str | None = None,
        usage_reported: bool = True,
        prompt: str | None = None,
        completion: str | None = None,
    ) -> UsageRecord:
        usage = usage or Usage()
        who = summary.attribution
        last = summary.attempts[-1] if summary.attempts else None
        now = self._clock()
        store_text = self.settings.USAGE_STORE_CONTENT
        return UsageRecord(
            ts=round(now, 6),
            request_id=summary.request_id,
            source=who.source,
            vkey=who.vkey,
            user=who.user,
            team=who.team,
            conversation_id=who.conversation_id,
            requested_model=summary.requested_model,
            model=summary.model or None,
            provider=summary.provider or None,
            key_id=summary.key_id or None,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            usage_reported=usage_reported,
            cost=summary.cost,
            latency_ms=round((time.monotonic() - summary.started) * 1000, 3),
            wait_ms=round(summary.waited * 1000, 3),
            provider_ms=round(_provider_ms(last, summary.stream and success), 3) if last else 0.0,
            attempts=len(summary.attempts),
            rotations=summary.rotations,
            fallback_used=summary.fallback_used,
            success=success,
            error_type=error_type,
            stream=summary.stream,
            degraded=summary.degraded,
            minute=int(now // 60),
            prompt=prompt if store_text else None,
            completion=completion if store_text else None,
        )

    def args(self, record: UsageRecord, cost_nanos: int | None) -> UsageArgs:
        s = self.settings
        return UsageArgs(
            record=record.to_json(),
            max_records=s.USAGE_MAX_RECORDS,
            max_age_seconds=s.USAGE_RETENTION_SECONDS,
            rollup_ttl=s.USAGE_ROLLUP_TTL_SECONDS,
            rollup_cap=s.USAGE_ROLLUP_MAX_NAMES,
            names={
                "key": record.key_id or "",
                "model": record.model or record.requested_model,
                "user": record.user or "",
                "vkey": record.vkey or "",
                "team": record.team or "",
            },
            tokens_in=record.prompt_tokens,
            tokens_out=record.completion_tokens,
            cost_nanos=cost_nanos or 0,
            error=not record.success,
            minute=record.minute,
        )

    def rollup_key(self, record: UsageRecord) -> str:
        return self.names.usage_rollup(record.minute)

    # -- writing -------------------------------------------------------------------------------
    def finish(self, answer: Answer, summary: CallSummary) -> None:
        """Every call ends here once: its record (the one its settle made, else one built from
        the answer) goes out, unless its settle already wrote it; its span either way."""
        record = summary.usage_record
        if record is None:
            record = self.record(
                summary,
                success=answer["success"],
                usage=_usage_of(answer),
                error_type=answer["error_type"],
                usage_reported=answer.get("usage_reported", True),
            )
        self._out(record, summary)

    def emit(self, record: UsageRecord, summary: CallSummary) -> None:
        """A finished call's record (a lease's: router/lease_runner.py) goes out, unless its
        settle already wrote it; its span either way."""
        self._out(record, summary)

    def abandoned(self, summary: CallSummary) -> None:
        """The caller went away before the answer (cancelled, or a stream it stopped reading):
        a record with ``error_type`` ``cancelled`` unless its settle wrote one already."""
        if summary.recorded:
            return
        record = self.record(summary, success=False, usage=None, error_type="cancelled")
        self._out(record, summary)

    def _out(self, record: UsageRecord, summary: CallSummary) -> None:
        if self.spans is not None:
            try:
                self.spans.emit(record)
            except Exception as exc:  # an exporter's bug never fails a call
                log.warning("could not emit the call's span", error=str(exc))
        if summary.recorded or not self.enabled:
            return
        summary.recorded = True
        self._background(record, summary)

    def unsettled(self, record: UsageRecord, summary: CallSummary) -> None:
        """A settle that was to write ``record`` did not (the store failed it for good, or the
        reservation had expired): it goes the background way (degraded mode keeps it)."""
        if self.enabled:
            self._background(record, summary)

    def _background(self, record: UsageRecord, summary: CallSummary) -> None:
        if len(self._pending) >= MAX_PENDING_WRITES:
            self._drop("too many usage records waiting to be written")
            return
        cost = None if record.cost is None else usd_to_nanos(record.cost)
        charge = None
        if record.degraded and cost is not None:  # its cost reached only the local spend
            charge = BudgetCharge(budget_fields(summary.attribution), cost, self._offsets())
        task = asyncio.ensure_future(self._write(record, cost, charge))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(
        self, record: UsageRecord, cost_nanos: int | None, charge: BudgetCharge | None
    ) -> None:
        n = self.names
        keys = RecordUsageKeys(n.usage_stream, self.rollup_key(record), n.budgets, n.budget_spend)
        args = self.args(record, cost_nanos)
        try:
            await lua_record_usage.run(self.store, keys, args, replay=True, charge=charge)
        except StoreError as exc:
            self._drop(str(exc))

    def _drop(self, why: str) -> None:
        self.dropped += 1
        log.warning("a usage record was not written", reason=why, dropped=self.dropped)

    async def flush(self) -> None:
        """Wait for the records being written (at close)."""
        while self._pending:
            with contextlib.suppress(Exception):
                await asyncio.gather(*list(self._pending), return_exceptions=True)


def last_user_text(messages: list[dict[str, Any]]) -> str | None:
    """The last user message's text (for USAGE_STORE_CONTENT)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                texts = [p.get("text", "") for p in content if isinstance(p, dict)]
                return "".join(t for t in texts if isinstance(t, str))
    return None


def _usage_of(answer: Answer) -> Usage:
    tokens = answer["tokens"]
    return Usage(tokens["prompt"], tokens["completion"], tokens["cached"], tokens["total"])


def _provider_ms(attempt: AttemptRecord, streamed: bool) -> float:
    """The last attempt's time at the provider: a finished stream's until now (its end)."""
    if streamed and attempt.started:
        return (time.monotonic() - attempt.started) * 1000
    return float(attempt.latency_ms)
