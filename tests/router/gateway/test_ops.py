"""Operations: liveness, readiness (and its wait for the store), status, metrics, OpenAPI."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.gateway.openapi import build_openapi
from tests.helpers import eventually
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import (
    GatewayHarness,
    PoolKey,
    assert_error_shape,
    chat_body,
)
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_health_ready_status(gw: GatewayHarness) -> None:
    status, body, headers = await gw.request("GET", "/health")
    assert status == 200 and body["status"] == "ok" and headers["x-request-id"]
    status, body, _ = await gw.request("GET", "/health/ready")
    assert status == 200 and body["ready"] is True
    assert body["store"]["kind"] == "redis" and body["keys"] == {"total": 2, "active": 2}
    status, body, _ = await gw.request("GET", "/status")
    assert status == 200 and body["status"] == "ok"
    assert body["keys"]["by_state"] == {"healthy": 2} and "gpt-4o-mini" in body["models"]
    assert "pool-a" not in str(body)  # counts only: no key ids, no masked keys


async def test_not_ready_until_the_store_answers(make_gateway: GatewayFactory) -> None:
    port = free_port()
    gw = await make_gateway(
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        REDIS_TIMEOUT_SECONDS=0.5,
        STORE_FAILURE_MODE="closed",
    )
    status, body, _ = await gw.request("GET", "/health")
    assert status == 200
    status, body, _ = await gw.request("GET", "/health/ready")
    assert status == 503 and body["ready"] is False and "unreachable" in body["reason"]
    status, body, _ = await gw.request("POST", "/v1/chat/completions", body=chat_body(), token="x")
    assert status == 503 and assert_error_shape(body)["code"] == "not_ready"
    redis = RedisServer(port=port).start()
    try:
        await eventually(lambda: gw.gateway.ready)
        status, body, _ = await gw.request("GET", "/health/ready")
        assert status == 200 and body["ready"] is True
        key = await gw.vkey()
        status, _, _ = await gw.request("POST", "/v1/chat/completions", body=chat_body(), token=key)
        assert status == 200
    finally:
        await gw.stop()
        redis.cleanup()


async def test_not_ready_while_draining(gw: GatewayHarness) -> None:
    gw.gateway.draining = True
    status, body, _ = await gw.request("GET", "/health/ready")
    assert status == 503 and body["reason"].startswith("draining")
    status, body, _ = await gw.request("POST", "/v1/chat/completions", body=chat_body(), token="x")
    assert status == 503 and assert_error_shape(body)["code"] == "draining"
    gw.gateway.draining = False


async def test_not_ready_with_no_active_key(gw: GatewayHarness) -> None:
    manager = gw.gateway.router.key_manager
    ids = sorted(manager.keys)
    try:
        for key_id in ids:
            await manager.update_key(key_id, active=False)
        status, body, _ = await gw.request("GET", "/health/ready")
        assert status == 503 and body["ready"] is False
        assert body["reason"] == "no active API keys configured"
        assert body["keys"] == {"total": 2, "active": 0}
    finally:
        for key_id in ids:
            await manager.update_key(key_id, active=True)
    status, body, _ = await gw.request("GET", "/health/ready")
    assert status == 200 and body["ready"] is True


async def test_metrics(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        pool=[PoolKey("pool-a", rpm=5), PoolKey("pool-b", rpm=5)], USER_RPM_DEFAULT=1000
    )
    assert gw.sim is not None
    key, tight = await gw.vkey(), await gw.vkey(rpm=1)
    gw.sim.set_faults({"spurious_429_rate": 1.0}, key_id="pool-a")  # pool-a answers 429
    for _ in range(3):
        status, _, _ = await gw.request("POST", "/v1/chat/completions", body=chat_body(), token=key)
        assert status == 200
    await gw.request("POST", "/v1/chat/completions", body=chat_body(), token=tight)
    status, _, _ = await gw.request("POST", "/v1/chat/completions", body=chat_body(), token=tight)
    assert status == 429  # the key's own budget
    for _ in range(4):  # pool-b's room runs out, pool-a is cooling down: no room
        await gw.request("POST", "/v1/chat/completions", body=chat_body(), token=key)

    status, text, headers = await gw.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    found = samples(text)
    m = "gpt-4o-mini"
    assert (
        value(found, "llm_router_requests_total", model=m, provider="openai", outcome="success")
        == 5
    )
    assert (
        value(found, "llm_router_requests_total", model=m, provider="none", outcome="rate_limited")
        >= 1
    )
    assert (
        value(found, "llm_router_tokens_total", model=m, provider="openai", kind="completion")
        == 5 * 24
    )
    assert value(found, "llm_router_request_latency_seconds_count", model=m, provider="openai") == 5
    assert value(found, "llm_router_rate_limits_avoided_total", model=m) >= 1
    assert value(found, "llm_router_rotations_total", model=m) >= 1
    assert value(found, "llm_router_gateway_limited_total", limit="key_rpm") == 1
    route = "/v1/chat/completions"
    assert (
        value(
            found,
            "llm_router_gateway_http_requests_total",
            route=route,
            method="POST",
            status="200",
        )
        == 5
    )
    assert (
        value(
            found,
            "llm_router_gateway_http_requests_total",
            route=route,
            method="POST",
            status="429",
        )
        >= 2
    )
    # per key, from the shared store: the provider's 429s and the state they led to
    assert value(found, "llm_router_key_rate_limited_total", key_id="pool-a") >= 1
    assert (
        value(found, "llm_router_key_state", key_id="pool-a", provider="openai", state="cooldown")
        == 1
    )
    assert value(found, "llm_router_key_rpm_limit", key_id="pool-b", model=m) == 5
    assert value(found, "llm_router_key_rpm_used", key_id="pool-b", model=m) == 5
    assert value(found, "llm_router_gateway_inflight_requests") == 1  # this scrape
    assert not any(k.secret in text for k in gw.pool)


async def test_http_metrics_count_unknown_methods_as_other(gw: GatewayHarness) -> None:
    """Any token is a method to HTTP (aiohttp's C parser takes ~35 of them, its Python parser
    any): the metric's ``method`` label stays bounded."""
    for method in ("PROPFIND", "MKCOL", "PURGE", "REPORT"):
        status, _, _ = await gw.request(method, "/nowhere")
        assert status in (404, 405)
    await gw.request("GET", "/nowhere")
    _, text, _ = await gw.request("GET", "/metrics")
    methods = {
        s.labels["method"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "llm_router_gateway_http_requests_total"
    }
    assert "other" in methods and "GET" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    found = samples(text)
    name = "llm_router_gateway_http_requests_total"
    assert value(found, name, route="unmatched", method="other", status="404") == 4


async def test_openapi_describes_every_route(gw: GatewayHarness) -> None:
    status, document, _ = await gw.request("GET", "/openapi.json")
    assert status == 200 and document == build_openapi(document["info"]["version"])
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    # the dashboard (/ui) is pages for a browser, its JSON for those pages (docs/dashboard.md):
    # not part of the API the document describes
    served = {
        (route.method, route.resource.canonical)
        for route in gw.server.app.router.routes()  # type: ignore[union-attr]
        if route.method != "HEAD"
        and route.resource is not None
        and not route.resource.canonical.startswith("/ui")
    }
    assert served == documented
    assert not any(path.startswith("/ui") for _, path in documented)


async def test_unknown_routes_and_methods_answer_in_the_error_shape(gw: GatewayHarness) -> None:
    status, body, _ = await gw.request("GET", "/v2/nothing")
    assert status == 404 and assert_error_shape(body)["code"] == "not_found"
    status, body, _ = await gw.request("DELETE", "/v1/chat/completions")
    assert status == 405 and assert_error_shape(body)["code"] == "method_not_allowed"


async def test_bodies_that_are_not_json(gw: GatewayHarness) -> None:
    key = await gw.vkey()
    for raw in (b"", b"{not json", b"[1, 2]", b'"text"'):
        status, body, _ = (
            await gw.request(
                "POST",
                "/v1/chat/completions",
                token=key,
                headers={"Content-Type": "application/json"},
                body=None,
            )
            if not raw
            else await _raw_post(gw, key, raw)
        )
        assert status == 400 and assert_error_shape(body)["param"] == "body", raw


async def _raw_post(gw: GatewayHarness, key: str, raw: bytes) -> tuple[int, object, object]:
    import json

    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            gw.url + "/v1/chat/completions",
            data=raw,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        ) as response,
    ):
        return response.status, json.loads(await response.text()), dict(response.headers)


async def test_a_body_over_the_limit_is_413(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(GATEWAY_MAX_BODY_BYTES=2048)
    key = await gw.vkey()
    status, body, _ = await gw.request(
        "POST", "/v1/chat/completions", token=key, body=chat_body("x" * 5000)
    )
    assert status == 413 and assert_error_shape(body)["code"] == "request_too_large"


async def test_a_store_that_goes_away_is_503_not_500(make_gateway: GatewayFactory) -> None:
    redis = RedisServer().start()
    try:
        gw = await make_gateway(
            REDIS_URL=redis.url, REDIS_TIMEOUT_SECONDS=0.5, STORE_FAILURE_MODE="closed"
        )
        key = await gw.vkey()
        status, _, _ = await gw.request("POST", "/v1/chat/completions", body=chat_body(), token=key)
        assert status == 200
        redis.stop()
        status, body, headers = await gw.request(
            "POST", "/v1/chat/completions", body=chat_body(), token=key
        )
        assert status == 503 and assert_error_shape(body)["code"] == "store_unavailable"
        assert headers["Retry-After"] == "1"
        status, body, _ = await gw.request("GET", "/health/ready")
        assert status == 503 and body["ready"] is False
        status, body = await gw.admin("GET", "/vkeys")
        assert status == 503 and assert_error_shape(body)["code"] == "store_unavailable"
    finally:
        redis.cleanup()
