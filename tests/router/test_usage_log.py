"""The library's usage records, costs and budgets against the provider simulator.

A success's record is written by its settle (nothing left for the background); a failure's, a
refused call's and a budget refusal's in the background; prompt text only when enabled; cost from
the price table (None for an unknown price); budgets refuse with ``budget_exceeded`` and the time
until the period resets.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from kernel.prices import default_table
from kernel.settings import Settings
from kernel.usage_record import UsageRecord
from lua.usage_records import NANOS, SpendRecord, budget_field
from router.request_router import RequestRouter
from router.simulator import FaultConfig
from router.usage_budgets import ALERTS
from tests.conftest import settings_for
from tests.helpers import both_pool_shards, eventually, local_stores
from tests.router.pool import PoolKey, sim_router

MODEL = "gpt-4o-mini"
#: The same records, costs and budgets with the pool in one slot and in three shards.
pytestmark = both_pool_shards


def settings(request: pytest.FixtureRequest, **overrides: Any) -> Settings:
    callspec = getattr(request.node, "callspec", None)
    kind = callspec.params.get("store", "redis") if callspec else "redis"
    overrides.setdefault("RESERVE_WAIT_SECONDS", 0)
    return settings_for(kind, request, **overrides)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def records_of(router: RequestRouter) -> list[UsageRecord]:
    """Every record, from each slot usage is written in (one, or a sharded pool's)."""
    await router.flush()
    store = router.key_manager.store
    entries = []
    for view in store.keys.usage_views():
        entries += await store.client.xrange(view.usage_stream)
    entries.sort(key=lambda entry: tuple(int(p) for p in _text(entry[0]).split("-")))
    out = []
    for _, fields in entries:
        raw = {_text(k): _text(v) for k, v in fields.items()}
        out.append(UsageRecord.from_json(raw["r"]))
    return out


@pytest.mark.parametrize("store", ["redis", "embedded", "cluster"], indirect=True)
async def test_a_success_is_recorded_by_its_settle_and_costs_what_the_table_says(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("k1")]) as (router, _):
        answer = await router.send_one_shot("hello", MODEL, max_tokens=16, user="ann", team="t1")
        assert answer["success"], answer
        assert not router.usage._pending  # nothing was left for the background
        records = await records_of(router)
    assert len(records) == 1
    record = records[0]
    tokens = answer["tokens"]
    cost = default_table().cost(MODEL, tokens["prompt"], tokens["completion"], tokens["cached"])
    assert cost is not None
    assert answer["cost"] == pytest.approx(cost.usd) and record.cost == pytest.approx(cost.usd)
    assert (record.user, record.team, record.source) == ("ann", "t1", "library")
    assert (record.model, record.key_id, record.success) == (MODEL, "k1", True)
    assert record.prompt_tokens == tokens["prompt"] and record.attempts == 1
    assert record.request_id == answer["request_id"]
    assert record.prompt is None and record.completion is None


async def test_failures_and_refusals_leave_one_record_each(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [PoolKey("bad", revoked=True)]
    async with sim_router(settings(request), tmp_path, keys) as (router, _):
        failed = await router.send_one_shot("who am i", MODEL, max_tokens=16)
        refused = await router.send_one_shot("too long", MODEL, max_tokens=10**9)
        unserved = await router.send_one_shot("nobody", "no-such-model", max_tokens=16)
        await router.flush()
        records = {r.request_id: r for r in await records_of(router)}
    for answer in (failed, refused, unserved):
        assert not answer["success"]
        record = records.pop(answer["request_id"])
        assert record.success is False and record.error_type == answer["error_type"]
    assert records == {}
    assert failed["cost"] is None


async def test_text_is_stored_only_when_enabled(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    canary = "canary-" + uuid.uuid4().hex
    for enabled in (False, True):
        folder = tmp_path / str(enabled)
        folder.mkdir()
        config = settings(request, USAGE_STORE_CONTENT=enabled)
        async with sim_router(config, folder, [PoolKey("k1")]) as (router, _):
            answer = await router.send_chat("c1", canary, MODEL, max_tokens=16)
            assert answer["success"]
            store = router.key_manager.store
            raw = json.dumps(
                [
                    [_text(v) for v in f.values()]
                    for view in store.keys.usage_views()
                    for _, f in await store.client.xrange(view.usage_stream)
                ]
            )
            records = await records_of(router)
        assert (canary in raw) is enabled
        assert records[0].conversation_id == "c1"
        if enabled:
            assert records[0].prompt == canary and records[0].completion == answer["content"]


async def test_the_usage_log_can_be_turned_off_and_cost_is_still_answered(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with sim_router(settings(request, USAGE_LOG=False), tmp_path, [PoolKey("k1")]) as (
        router,
        _,
    ):
        answer = await router.send_one_shot("hello", MODEL, max_tokens=16)
        await router.send_one_shot("too long", MODEL, max_tokens=10**9)
        await router.flush()
        assert await records_of(router) == []
    assert answer["cost"] is not None and answer["cost"] > 0


async def test_an_unknown_price_is_null_and_refused_only_under_a_budget(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [PoolKey("k1", models=["house-model-x"])]
    budgets = json.dumps({"user:cara": {"limit_usd": 10, "period": "day"}})
    async with sim_router(settings(request, BUDGETS=budgets), tmp_path, keys) as (router, _):
        free = await router.send_one_shot("hi", "house-model-x", max_tokens=16, user="dan")
        held = await router.send_one_shot("hi", "house-model-x", max_tokens=16, user="cara")
    assert free["success"] and free["cost"] is None
    assert not held["success"] and held["error_type"] == "budget_exceeded"
    assert "house-model-x" in (held["error"] or "") and "user:cara" in (held["error"] or "")


@local_stores
async def test_a_budget_refuses_once_spent_says_when_it_resets_and_counts_exactly(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    per_call = default_table().worst_case_nanos(MODEL, 20, 16)
    assert per_call is not None
    limit = 3 * per_call  # three calls' worst case; each call costs less, so a few more fit
    budgets = json.dumps({"team:blue": {"limit_usd": limit / NANOS, "period": "month"}})
    config = settings(request, BUDGETS=budgets)
    async with sim_router(config, tmp_path, [PoolKey("k1")]) as (router, _):
        answers = [
            await router.send_one_shot(f"call {i}", MODEL, max_tokens=16, team="blue")
            for i in range(40)
        ]
        await router.flush()  # the settles (which give the estimates back) landed
        store_ = router.key_manager.store
        raw = await store_.client.hget(store_.keys.budget_spend, budget_field("team", "blue"))
        other = await router.send_one_shot("not blue", MODEL, max_tokens=16, team="green")
        await router.flush()
        records = await records_of(router)
    spend = SpendRecord.decode(_text(raw))
    served = [a for a in answers if a["success"]]
    refused = [a for a in answers if not a["success"]]
    assert served and refused and other["success"]
    assert {a["error_type"] for a in refused} == {"budget_exceeded"}
    assert all(0 < a["retry_after"] <= 31 * 86400 for a in refused)
    assert spend.reserved == 0
    assert spend.spent == sum(round(a["cost"] * NANOS) for a in served) <= limit
    assert len(records) == 41


async def test_a_soft_alert_fires_once_per_period_and_reaches_the_hooks(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    per_call = default_table().worst_case_nanos(MODEL, 20, 16)
    assert per_call is not None
    budgets = json.dumps(
        {"team:red": {"limit_usd": 10 * per_call / NANOS, "period": "day", "alert_at": 0.3}}
    )
    heard: list[str] = []
    async with sim_router(settings(request, BUDGETS=budgets), tmp_path, [PoolKey("k1")]) as (
        router,
        _,
    ):
        router.usage.alert_hooks.append(heard.append)
        before = ALERTS["team"]
        answers = [
            await router.send_one_shot(f"call {i}", MODEL, max_tokens=16, team="red")
            for i in range(30)
        ]
    assert any(a["success"] for a in answers)
    assert heard == ["team"]
    assert ALERTS["team"] == before + 1


async def test_a_caller_that_goes_away_still_leaves_one_record(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    faults = FaultConfig(latency_ms=400, stream_chunk_delay_ms=50)
    async with sim_router(settings(request), tmp_path, [PoolKey("k1")], faults=faults) as (
        router,
        sim,
    ):
        # a stream whose reader stops after its first piece of text
        events = router.stream_one_shot("tell me a long story", MODEL, max_tokens=64)
        async for event in events:
            assert event["type"] == "delta"
            break
        await events.aclose()  # type: ignore[attr-defined]
        # a plain call cancelled while the provider thinks
        task = asyncio.create_task(router.send_one_shot("slow", MODEL, max_tokens=16))
        await eventually(lambda: len(sim.requests()) >= 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await router.flush()
        records = await records_of(router)
    assert len(records) == 2
    assert [(r.success, r.error_type) for r in records] == [(False, "cancelled")] * 2
    assert [r.stream for r in records] == [True, False]


async def test_each_call_is_one_span_without_its_text(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from router.telemetry import UsageSpans

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    canary = "canary-" + uuid.uuid4().hex
    config = settings(request, USAGE_STORE_CONTENT=True)  # even then: no text in a span
    async with sim_router(config, tmp_path, [PoolKey("k1")]) as (router, _):
        router.usage.spans = UsageSpans(provider)
        ok = await router.send_one_shot(canary, MODEL, max_tokens=16, user="eve")
        bad = await router.send_one_shot(canary, MODEL, max_tokens=10**9)
    provider.shutdown()
    spans = exporter.get_finished_spans()
    assert ok["success"] and not bad["success"]
    assert len(spans) == 2
    good = dict(spans[0].attributes or {})
    assert good["gen_ai.request.model"] == MODEL
    assert good["gen_ai.usage.input_tokens"] == ok["tokens"]["prompt"]
    assert good["llm_router.request_id"] == ok["request_id"]
    assert good["llm_router.user"] == "eve"
    assert dict(spans[1].attributes or {})["error.type"] == bad["error_type"]
    assert canary not in repr([(s.name, s.attributes, s.events) for s in spans])
