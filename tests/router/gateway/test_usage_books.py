"""The books balance: a load through the gateway and the library, against the simulator, leaves one
usage record per call, whose tokens are what the simulator admitted, and rollups that equal them.

Faults are the simulator's pre-admission ones (5xx, spurious 429s): a failed attempt costs no
tokens on either side, and calls rotate or fail, so failure records are part of the books.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import redis.asyncio as aioredis

from kernel.redis_keys import RedisKeys
from kernel.usage_record import UsageRecord
from keys.manager import KeyManager
from lua.usage_records import NANOS, Rollup, parse_rollup_field
from router.request_router import RequestRouter
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL

CALLS = 24  # per path: gateway plain, gateway stream, library plain, library stream


async def _records(client: aioredis.Redis, names: RedisKeys) -> list[UsageRecord]:
    entries = await client.xrange(names.usage_stream)
    return [UsageRecord.from_json(fields[b"r"]) for _, fields in entries]


async def _rollups(
    client: aioredis.Redis, names: RedisKeys, minutes: set[int]
) -> dict[str, Rollup]:
    totals: dict[str, Rollup] = {}
    for minute in minutes:
        raw = await client.hgetall(names.usage_rollup(minute))
        for field, value in raw.items():
            name = field.decode()
            if name.startswith("#"):
                continue
            totals[name] = totals.get(name, Rollup()) + Rollup.decode(value.decode())
    return totals


def _sum(records: list[UsageRecord]) -> Rollup:
    return Rollup(
        requests=len(records),
        tokens_in=sum(r.prompt_tokens for r in records),
        tokens_out=sum(r.completion_tokens for r in records),
        cost_nanos=sum(round((r.cost or 0) * NANOS) for r in records),
        errors=sum(1 for r in records if not r.success),
    )


async def _gateway_calls(gw: Any, secret: str) -> list[bool]:
    client = gw.client(secret)
    outcomes = []

    async def plain(i: int) -> None:
        try:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"gateway {i}"}], max_tokens=12
            )
            outcomes.append(True)
        except Exception:
            outcomes.append(False)

    async def stream(i: int) -> None:
        try:
            chunks = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"gateway stream {i}"}],
                max_tokens=12,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _ in chunks:
                pass
            outcomes.append(True)
        except Exception:
            outcomes.append(False)

    await asyncio.gather(*(plain(i) for i in range(CALLS)), *(stream(i) for i in range(CALLS)))
    await client.close()
    return outcomes


async def _library_calls(router: RequestRouter) -> list[dict[str, Any]]:
    async def plain(i: int) -> dict[str, Any]:
        return dict(
            await router.send_one_shot(f"library {i}", MODEL, max_tokens=12, user="bob", team="ml")
        )

    async def stream(i: int) -> dict[str, Any]:
        last: dict[str, Any] = {}
        async for event in router.stream_chat(
            f"conv-{i}", f"library stream {i}", MODEL, max_tokens=12, user="bob", team="ml"
        ):
            last = dict(event)
        return last

    return list(
        await asyncio.gather(*(plain(i) for i in range(CALLS)), *(stream(i) for i in range(CALLS)))
    )


@pytest.mark.integration
async def test_every_call_leaves_one_record_and_the_books_balance(
    make_gateway: GatewayFactory, redis_url: str
) -> None:
    gw = await make_gateway(sim_config={"faults": {"error_rate": 0.15, "spurious_429_rate": 0.1}})
    secret = await gw.vkey(name="books", user_id="alice", team="ml")
    library = RequestRouter(
        KeyManager(settings=gw.settings, environ=gw.environ), settings=gw.settings
    )
    await library.start()
    try:
        gateway_outcomes, answers = await asyncio.gather(
            _gateway_calls(gw, secret), _library_calls(library)
        )
        await library.flush()
        await gw.gateway.router.flush()
    finally:
        await library.close()
    names = RedisKeys(gw.settings.REDIS_KEY_PREFIX)
    client = aioredis.from_url(redis_url)
    try:
        records = await _records(client, names)
        rollups = await _rollups(client, names, {r.minute for r in records})
    finally:
        await client.aclose()
    assert gw.sim is not None
    stats = gw.sim.stats()["keys"]

    # one record per call, each call's own
    assert len(records) == 4 * CALLS
    assert len({r.request_id for r in records}) == len(records)
    by_source = Counter(r.source for r in records)
    assert by_source == {"gateway": 2 * CALLS, "library": 2 * CALLS}
    assert sum(r.success for r in records if r.source == "gateway") == sum(gateway_outcomes)
    assert sum(r.success for r in records if r.source == "library") == sum(
        a["success"] for a in answers
    )
    assert {r.user for r in records if r.source == "library"} == {"bob"}
    assert {(r.user, r.team) for r in records if r.source == "gateway"} == {("alice", "ml")}
    assert sum(r.stream for r in records) == 2 * CALLS
    assert any(not r.success for r in records), "the faults should have failed some calls"

    # tokens: what the simulator admitted, exactly
    admitted_in = sum(s[MODEL]["prompt_tokens"] for s in stats.values() if MODEL in s)
    admitted_out = sum(s[MODEL]["completion_tokens"] for s in stats.values() if MODEL in s)
    assert sum(r.prompt_tokens for r in records) == admitted_in
    assert sum(r.completion_tokens for r in records) == admitted_out

    # cost: known for the catalog's model; rollups equal the records, in total and per name
    assert all(r.cost is not None and r.cost > 0 for r in records if r.success)
    assert rollups["all|"] == _sum(records)
    for dim, attr in (("user", "user"), ("team", "team"), ("key", "key_id"), ("vkey", "vkey")):
        expected: dict[str, list[UsageRecord]] = {}
        for r in records:
            name = getattr(r, attr)
            if name:
                expected.setdefault(name, []).append(r)
        got = {
            parse_rollup_field(f)[1]: v
            for f, v in rollups.items()
            if parse_rollup_field(f)[0] == dim
        }
        assert got == {name: _sum(rs) for name, rs in expected.items()}, dim
