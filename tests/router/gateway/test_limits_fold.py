"""The gateway's limits folded into the router's reservation (keys/admission.py,
lua/reserve_admitted.lua): one script run before the provider on standalone Redis and the embedded
store, a round trip of their own on Redis Cluster; the same answers everywhere. Real gateway,
real Redis (standalone and a three-master cluster) or the embedded store, the simulator."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from router.gateway import VirtualKeySpec
from tests.helpers import both_pool_shards
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import (
    MODEL,
    GatewayHarness,
    PoolKey,
    assert_error_shape,
    chat_body,
)

pytestmark = pytest.mark.integration

KINDS = ["redis", "cluster", "embedded"]


async def start(
    make_gateway: GatewayFactory, request: pytest.FixtureRequest, kind: str, **settings: Any
) -> GatewayHarness:
    """A gateway on the ``kind`` store."""
    if kind == "cluster":
        settings.update(REDIS_URL=request.getfixturevalue("cluster_instance").url)
        settings["REDIS_CLUSTER"] = True
    return await make_gateway(embedded=kind == "embedded", **settings)


async def chat(gw: GatewayHarness, token: str | None) -> tuple[int, Any, Any]:
    return await gw.request("POST", "/v1/chat/completions", token=token, body=chat_body())


async def pool_records(gw: GatewayHarness) -> dict[str, Any]:
    """The pool's per-bucket state, counters and reservations-in-flight ready sets, once every
    deferred settle has landed."""
    router = gw.gateway.router
    await router.key_manager.flush()
    store, names = router.key_manager.store, router.key_manager.store.keys
    return {
        "state": await store.call(lambda c: c.hgetall(names.pool_state)),
        "stats": await store.call(lambda c: c.hgetall(names.pool_stats)),
    }


def limited(gw: GatewayHarness, limit: str) -> float:
    return float(gw.gateway.metrics.limited.labels(limit)._value.get())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("settings", "spec", "code"),
    [
        ({"USER_RPM_DEFAULT": 2}, {"user_id": "alice"}, "user_limit_exceeded"),
        ({"GLOBAL_RPM_MAX": 2}, {}, "global_limit_exceeded"),
        ({}, {"rpm": 2}, "key_rpm_limit_exceeded"),
    ],
)
async def test_a_request_its_limit_refuses_reserves_nothing_on_the_pool(
    make_gateway: GatewayFactory,
    request: pytest.FixtureRequest,
    kind: str,
    settings: dict[str, Any],
    spec: dict[str, Any],
    code: str,
) -> None:
    gw = await start(make_gateway, request, kind, **settings)
    token = await gw.vkey(**spec)
    assert [(await chat(gw, token))[0] for _ in range(2)] == [200, 200]
    before = await pool_records(gw)
    status, body, headers = await chat(gw, token)
    error = assert_error_shape(body)
    assert status == 429 and error["code"] == code, body
    assert f"model '{MODEL}'" in error["message"] and int(headers["retry-after"]) >= 1
    assert limited(gw, code.removesuffix("_limit_exceeded")) == 1
    assert await pool_records(gw) == before  # no key reserved, no request counted


@pytest.mark.parametrize("kind", KINDS)
async def test_a_revoked_key_is_refused_with_nothing_reserved(
    make_gateway: GatewayFactory, request: pytest.FixtureRequest, kind: str
) -> None:
    gw = await start(make_gateway, request, kind)
    key, token = await gw.gateway.vkeys.create(VirtualKeySpec.parse({"name": "soon-revoked"}))
    assert (await chat(gw, token))[0] == 200
    # revoked by another process: this one still has the key cached, the limits script sees it
    store = gw.gateway.vkeys.store
    await store.call(lambda c: c.set(store.keys.rl_vkey_revoked(key.id), "1"))
    before = await pool_records(gw)
    status, body, _ = await chat(gw, token)
    assert status == 401 and "revoked" in assert_error_shape(body)["message"]
    assert await pool_records(gw) == before


@both_pool_shards  # POOL_SHARDS=3: the limits are charged apart, before the shards are asked
@pytest.mark.parametrize("kind", KINDS)
async def test_an_admitted_request_is_charged_once_however_many_keys_it_tries(
    make_gateway: GatewayFactory, request: pytest.FixtureRequest, kind: str
) -> None:
    gw = await start(make_gateway, request, kind)
    assert gw.sim is not None
    gw.sim.set_faults({"spurious_429_rate": 1.0}, key_id="pool-a")  # pool-a answers 429
    token = await gw.vkey(rpm=3, user_id="carol")
    attempts = []
    for _ in range(3):
        status, body, headers = await chat(gw, token)
        assert status == 200, body
        attempts.append(int(headers["x-router-attempts"]))
    assert max(attempts) == 2  # pool-a was tried first at least once, then pool-b
    status, body, _ = await chat(gw, token)  # the key's 3 requests a minute are spent: by 3
    assert status == 429 and assert_error_shape(body)["code"] == "key_rpm_limit_exceeded"


class BurstKey(PoolKey):
    """A pool key that takes one request at a time (``rpm_burst`` 1)."""

    def entry(self, base_url: str) -> dict[str, Any]:
        return {**super().entry(base_url), "rpm_burst": 1}


@pytest.mark.parametrize("kind", ["redis", "embedded"])
async def test_an_admitted_request_waiting_for_room_is_charged_once(
    make_gateway: GatewayFactory, request: pytest.FixtureRequest, kind: str
) -> None:
    # one key taking a request every 0.5 s: of three sent together two wait for room
    gw = await start(
        make_gateway, request, kind, pool=[BurstKey("solo", rpm=120)], RESERVE_WAIT_SECONDS=5
    )
    token = await gw.vkey(rpm=3)
    answers = await asyncio.gather(*(chat(gw, token) for _ in range(3)))
    assert [status for status, _, _ in answers] == [200, 200, 200]
    status, body, _ = await chat(gw, token)
    assert status == 429 and assert_error_shape(body)["code"] == "key_rpm_limit_exceeded"


async def evalsha_calls(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_one_script_run_before_the_provider_on_standalone_redis(
    make_gateway: GatewayFactory, redis_url: str
) -> None:
    """Per request: the reservation (with the limits) and the deferred settle; the virtual
    key's TPM adjustment runs after the answer. Main made three before the provider's answer."""
    gw = await make_gateway()
    plain, budgeted = await gw.vkey(rpm=100), await gw.vkey(tpm=100_000)
    router = gw.gateway.router
    assert (await chat(gw, plain))[0] == 200  # warm: scripts loaded, layouts synced, key cached
    await router.key_manager.flush()
    first = await evalsha_calls(redis_url)
    for _ in range(5):
        assert (await chat(gw, plain))[0] == 200
    await router.key_manager.flush()
    assert await evalsha_calls(redis_url) - first == 5 * 2  # reserve+limits, settle
    assert (await chat(gw, budgeted))[0] == 200
    await router.key_manager.flush()
    await gw.gateway.limits.flush()
    second = await evalsha_calls(redis_url)
    for _ in range(5):
        assert (await chat(gw, budgeted))[0] == 200
    await router.key_manager.flush()
    await gw.gateway.limits.flush()
    assert await evalsha_calls(redis_url) - second == 5 * 3  # and the TPM adjustment


async def test_the_tpm_adjustment_lands_once_by_close(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    token = await gw.vkey(tpm=1000)
    ran: list[int] = []
    adjust = gw.gateway.limits.adjust

    async def counted(**kwargs: Any) -> None:
        ran.append(kwargs["delta"])
        await adjust(**kwargs)

    gw.gateway.limits.adjust = counted  # type: ignore[method-assign]
    status, body, _ = await gw.request(
        "POST", "/v1/chat/completions", token=token, body=chat_body(max_tokens=500)
    )
    assert status == 200
    await gw.gateway.close()
    assert len(ran) == 1 and ran[0] < 0  # the estimate (max_tokens 500) was more than used
    # given back: a request of 900 more tokens fits the key's 1000 a minute again
    gw.gateway.ready = True
    status, body, _ = await gw.request(
        "POST", "/v1/chat/completions", token=token, body=chat_body(max_tokens=900)
    )
    assert status == 200, body


async def test_a_request_the_router_refuses_before_reserving_is_still_charged(
    make_gateway: GatewayFactory,
) -> None:
    """A call the router ends before any reservation (a prompt longer than the model's context
    window) is charged as before the fold, and the limits' refusal comes first."""
    gw = await make_gateway()
    token = await gw.vkey(rpm=1)
    body = chat_body("hello " * 140_000)  # more than gpt-4o-mini's 128k tokens
    status, answer, _ = await gw.request("POST", "/v1/chat/completions", token=token, body=body)
    assert status == 400 and assert_error_shape(answer)["code"] == "context_length_exceeded"
    status, answer, _ = await gw.request("POST", "/v1/chat/completions", token=token, body=body)
    assert status == 429 and assert_error_shape(answer)["code"] == "key_rpm_limit_exceeded"


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_gateways_sharing_a_store_never_pass_the_limits_together(
    make_gateway: GatewayFactory, request: pytest.FixtureRequest, kind: str
) -> None:
    prefix = f"fold{time.monotonic_ns()}"
    limit, vkey_rpm = 6, 4
    gateways = [
        await start(make_gateway, request, kind, REDIS_KEY_PREFIX=prefix, GLOBAL_RPM_MAX=limit)
        for _ in range(2)
    ]
    tokens = [await gateways[0].vkey(rpm=vkey_rpm) for _ in range(2)] + [await gateways[0].vkey()]
    started = time.monotonic()
    sent = [(gw, token) for gw in gateways for token in tokens for _ in range(3)]
    answers = await asyncio.gather(*(chat(gw, token) for gw, token in sent))
    elapsed = time.monotonic() - started
    ok: dict[str, int] = {}
    for (_, token), (status, body, _) in zip(sent, answers, strict=True):
        assert status in (200, 429), body
        ok[token] = ok.get(token, 0) + (status == 200)
    refill = int(elapsed * limit / 60)  # GCRA refills continuously: what came back meanwhile
    assert limit <= sum(ok.values()) <= limit + refill
    assert all(ok[token] <= vkey_rpm for token in tokens[:2])


@pytest.mark.parametrize("kind", ["redis", "embedded"])
async def test_streams_and_every_chat_route_answer_the_refusal_as_before(
    make_gateway: GatewayFactory, request: pytest.FixtureRequest, kind: str
) -> None:
    gw = await start(make_gateway, request, kind)
    token = await gw.vkey(rpm=1)
    assert (await chat(gw, token))[0] == 200
    before = await pool_records(gw)
    stream = await gw.request(
        "POST", "/v1/chat/completions", token=token, body=chat_body(stream=True)
    )
    responses = await gw.request(
        "POST", "/v1/responses", token=token, body={"model": MODEL, "input": "Hello!"}
    )
    for status, body, headers in (stream, responses):
        assert status == 429 and assert_error_shape(body)["code"] == "key_rpm_limit_exceeded"
        assert int(headers["retry-after"]) >= 1
    anthropic_body = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    for streamed in (False, True):
        status, body, _ = await gw.request(
            "POST",
            "/v1/messages",
            body={**anthropic_body, "stream": streamed},
            headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
        )
        assert status == 429 and body["type"] == "error", body
        assert body["error"]["type"] == "rate_limit_error"
    assert limited(gw, "key_rpm") == 4
    assert await pool_records(gw) == before
