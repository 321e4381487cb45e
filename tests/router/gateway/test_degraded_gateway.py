"""The gateway in degraded mode: Redis stopped under a running gateway, then started again.

Ready but ``degraded``; a virtual key verified before keeps working on the local limits (each
divided by ROUTER_PROCESSES); one that cannot be verified is a 503 with Retry-After, never a 401;
degraded answers are counted; when Redis is back everything is shared again.
"""

from __future__ import annotations

import pytest

from tests.helpers import eventually
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import assert_error_shape, chat_body
from tests.servers import RedisServer

pytestmark = pytest.mark.integration


async def test_a_gateway_keeps_serving_verified_keys_on_local_limits_while_redis_is_down(
    make_gateway: GatewayFactory,
) -> None:
    redis = RedisServer(extra=["--appendonly", "yes"]).start()
    try:
        gw = await make_gateway(
            REDIS_URL=redis.url,
            REDIS_TIMEOUT_SECONDS=0.5,
            USER_RPM_DEFAULT=4,
            ROUTER_PROCESSES=2,  # 2 requests a minute per user on the local store
        )
        known = await gw.vkey(user_id="alice")
        unseen = await gw.vkey(user_id="bob")  # never verified by this gateway
        status, _, headers = await gw.request(
            "POST", "/v1/chat/completions", body=chat_body(), token=known
        )
        assert status == 200 and "x-router-degraded" not in headers
        redis.stop()

        served = [
            await gw.request("POST", "/v1/chat/completions", body=chat_body(), token=known)
            for _ in range(3)
        ]
        assert [s for s, _, _ in served] == [200, 200, 429]
        assert all(h.get("x-router-degraded") == "true" for _, _, h in served[:2])
        assert assert_error_shape(served[2][1])["code"] == "user_limit_exceeded"
        status, body, headers = await gw.request(
            "POST", "/v1/chat/completions", body=chat_body(), token=unseen
        )
        assert status == 503 and assert_error_shape(body)["code"] == "store_unavailable"
        assert headers["Retry-After"] == "1"
        status, body, _ = await gw.request("GET", "/health/ready")
        assert status == 200 and body["ready"] is True and body["status"] == "degraded"
        assert body["store"]["degraded"] is True
        status, body, _ = await gw.request("GET", "/status")
        assert status == 200 and body["status"] == "degraded"
        status, text, _ = await gw.request("GET", "/metrics")
        assert 'llm_router_degraded_calls_total{outcome="success"} 2.0' in text
        status, body = await gw.admin("GET", "/vkeys")  # virtual keys live only in Redis
        assert status == 503 and assert_error_shape(body)["code"] == "store_unavailable"

        redis.start()
        await eventually(lambda: not gw.gateway.store.degraded, timeout=10)
        status, _, headers = await gw.request(
            "POST", "/v1/chat/completions", body=chat_body(), token=unseen
        )
        assert status == 200 and "x-router-degraded" not in headers
        status, body, _ = await gw.request("GET", "/health/ready")
        assert status == 200 and "status" not in body and body["store"]["degraded"] is False
        # alice's 2 local requests are not in Redis: for a minute her local limit still holds
        status, body, _ = await gw.request(
            "POST", "/v1/chat/completions", body=chat_body(), token=known
        )
        assert status == 429 and assert_error_shape(body)["code"] == "user_limit_exceeded"
    finally:
        redis.cleanup()
