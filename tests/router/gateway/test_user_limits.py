"""The gateway's default per-user limit (``USER_RPM_DEFAULT``, document 004's 10 requests a
minute) applies only to requests that name a user (a virtual key with a ``user_id``, or the
anonymous development user); a request that names none counts against its virtual key's own
limits. Through the official OpenAI SDK and raw HTTP; real gateway, real Redis, the simulator."""

from __future__ import annotations

import openai
import pytest

from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL, GatewayHarness, assert_error_shape, chat_body

pytestmark = pytest.mark.integration

HELLO = [{"role": "user", "content": "Hello!"}]


async def served(gw: GatewayHarness, key: str, n: int) -> list[int | str]:
    """n requests with the SDK: 200, or the refusal's code."""
    client = gw.client(key)
    out: list[int | str] = []
    for _ in range(n):
        try:
            await client.chat.completions.create(model=MODEL, messages=HELLO)
            out.append(200)
        except openai.RateLimitError as exc:
            out.append(str(exc.code))
    return out


async def test_a_key_without_a_user_is_not_held_to_the_per_user_default(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(USER_RPM_DEFAULT=10)  # document 004's figure
    keyless = await gw.vkey(name="my-app")
    assert await served(gw, keyless, 15) == [200] * 15


async def test_a_key_without_a_user_counts_against_its_own_limits(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(USER_RPM_DEFAULT=10)
    keyless = await gw.vkey(name="batch", rpm=12)
    assert await served(gw, keyless, 13) == [200] * 12 + ["key_rpm_limit_exceeded"]
    status, body, _ = await gw.request(
        "POST", "/v1/chat/completions", token=keyless, body=chat_body()
    )
    error = assert_error_shape(body)
    assert status == 429 and error["code"] == "key_rpm_limit_exceeded"
    assert f"model '{MODEL}'" in error["message"]


async def test_a_named_user_is_held_to_the_per_user_default_across_keys(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(USER_RPM_DEFAULT=10)
    first, second = await gw.vkey(user_id="alice"), await gw.vkey(user_id="alice")
    assert await served(gw, first, 6) == [200] * 6
    assert await served(gw, second, 5) == [200] * 4 + ["user_limit_exceeded"]
    status, body, headers = await gw.request(
        "POST", "/v1/chat/completions", token=first, body=chat_body()
    )
    error = assert_error_shape(body)
    assert status == 429 and error["code"] == "user_limit_exceeded"
    assert "USER_RPM_DEFAULT" in error["message"] and f"model '{MODEL}'" in error["message"]
    assert 1 <= int(headers["retry-after"]) <= 7
    # another user, and a key naming none, are not held by alice's limit
    assert await served(gw, await gw.vkey(user_id="bob"), 2) == [200, 200]
    assert await served(gw, await gw.vkey(), 2) == [200, 200]


async def test_the_anonymous_development_user_is_a_named_user(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(GATEWAY_ALLOW_ANONYMOUS=True, USER_RPM_DEFAULT=2)
    codes = []
    for _ in range(3):
        status, body, _ = await gw.request("POST", "/v1/chat/completions", body=chat_body())
        codes.append(status if status == 200 else assert_error_shape(body)["code"])
    assert codes == [200, 200, "user_limit_exceeded"]
