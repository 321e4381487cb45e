"""The gateway makes a model substitution visible: ``x-router-fallback: <asked> -> <served>`` and
``x-router-fallback-reason`` on an answer served by a fallback model (absent otherwise), and a
refusal about limits names the model the caller asked for. Official OpenAI SDK and raw HTTP;
real gateway, real Redis, the simulator."""

from __future__ import annotations

import openai
import pytest

from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import PoolKey, assert_error_shape, chat_body

pytestmark = pytest.mark.integration

ASKED, FALLBACK = "gpt-4o", "gpt-4o-mini"
HELLO = [{"role": "user", "content": "Hello!"}]


async def test_an_answer_from_a_fallback_model_says_so_in_its_headers(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        pool=[PoolKey("big", rpm=1, models=[ASKED]), PoolKey("small", models=[FALLBACK])],
        routing={"fallbacks": {ASKED: [FALLBACK]}},
    )
    client = gw.client(await gw.vkey())
    first = await client.chat.completions.with_raw_response.create(model=ASKED, messages=HELLO)
    assert "x-router-fallback" not in first.headers
    assert first.parse().model == ASKED
    second = await client.chat.completions.with_raw_response.create(model=ASKED, messages=HELLO)
    assert second.headers["x-router-fallback"] == f"{ASKED} -> {FALLBACK}"
    assert second.headers["x-router-fallback-reason"] == "fallback"
    assert second.parse().model == FALLBACK


async def test_a_refusal_about_limits_names_the_model_asked_for(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        pool=[PoolKey("g1", rpm=1, models=[FALLBACK])], routing={"aliases": {ASKED: FALLBACK}}
    )
    client = gw.client(await gw.vkey())
    await client.chat.completions.create(model=ASKED, messages=HELLO)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model=ASKED, messages=HELLO)
    assert f"'{ASKED}'" in caught.value.message
    status, body, headers = await gw.request(
        "POST", "/v1/chat/completions", token=await gw.vkey(), body=chat_body(model=ASKED)
    )
    assert status == 429 and f"'{ASKED}'" in assert_error_shape(body)["message"]
    assert "x-router-fallback" not in headers
