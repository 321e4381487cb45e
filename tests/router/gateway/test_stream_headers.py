"""A streamed answer's headers say who serves it, as a whole answer's do: ``x-router-provider``,
``x-router-attempts`` (the keys tried, this one included) and ``x-router-degraded`` when it runs
on local limits, from the stream's first event. Official OpenAI SDK (chat, Responses) and
Anthropic SDK (Messages); real gateway, real Redis (a stopped one too), the simulator."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import anthropic
import pytest

from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL, GatewayHarness, PoolKey, chat_body
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

SERVED = ("x-router-provider", "x-router-attempts", "x-router-degraded")


class TierKey(PoolKey):
    """A pool key serving ``MODEL`` in priority tier ``priority`` (1 is tried first)."""

    priority = 1

    def entry(self, base_url: str) -> dict[str, Any]:
        return {**super().entry(base_url), "models": [{"model": MODEL, "priority": self.priority}]}


class SecondKey(TierKey):
    priority = 2


def stream(gw: GatewayHarness, key: str, route: str) -> AbstractAsyncContextManager[Any]:
    """A stream of ``route``, as its official SDK opens it (headers readable)."""
    hello: Any = [{"role": "user", "content": "Hello!"}]
    if route == "messages":
        claude = anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0)
        return claude.messages.with_streaming_response.create(
            model=MODEL, max_tokens=64, messages=hello, stream=True
        )
    client = gw.client(key)
    if route == "responses":
        return client.responses.with_streaming_response.create(
            model=MODEL, input="Hello!", stream=True
        )
    return client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=hello, stream=True
    )


async def served(gw: GatewayHarness, key: str, route: str) -> tuple[dict[str, str], str]:
    """The stream's headers about who served it, and its text (all of it read)."""
    async with stream(gw, key, route) as response:
        headers = {name: response.headers[name] for name in SERVED if name in response.headers}
        return headers, "\n".join([line async for line in response.iter_lines()])


@pytest.mark.parametrize("route", ["chat", "responses", "messages"])
async def test_a_stream_says_its_provider_and_the_keys_it_tried(
    make_gateway: GatewayFactory, route: str
) -> None:
    gw = await make_gateway(pool=[TierKey("flaky"), SecondKey("steady")])
    assert gw.sim is not None
    gw.sim.set_faults({"spurious_429_rate": 1.0}, key_id="flaky")  # answers 429: rotated off
    key = await gw.vkey()
    rotated, rotated_text = await served(gw, key, route)
    plain, plain_text = await served(gw, key, route)  # flaky cools down: steady at once
    assert [r.key_id for r in gw.sim.requests()] == ["flaky", "steady", "steady"]
    assert rotated == {"x-router-provider": "openai", "x-router-attempts": "2"}
    assert plain == {"x-router-provider": "openai", "x-router-attempts": "1"}
    assert "Simulated openai" in rotated_text and "Simulated openai" in plain_text


async def test_a_stream_served_on_local_limits_says_so(make_gateway: GatewayFactory) -> None:
    redis = RedisServer().start()
    try:
        gw = await make_gateway(REDIS_URL=redis.url, REDIS_TIMEOUT_SECONDS=0.5)
        key = await gw.vkey()
        status, _, _ = await gw.request("POST", "/v1/chat/completions", body=chat_body(), token=key)
        assert status == 200  # the virtual key verified while Redis was up
        shared, _ = await served(gw, key, "chat")
        redis.stop()
        local, text = await served(gw, key, "chat")
    finally:
        redis.cleanup()
    assert shared == {"x-router-provider": "openai", "x-router-attempts": "1"}
    assert local == {**shared, "x-router-degraded": "true"} and "Simulated openai" in text
