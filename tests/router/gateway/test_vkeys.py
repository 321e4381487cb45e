"""Virtual keys: lifecycle, hashing, allowed models, budgets, tags; per-user and global limits."""

from __future__ import annotations

import hashlib

import openai
import pytest

from router.gateway.vkeys import VirtualKeySpec
from tests.helpers import eventually
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import (
    MODEL,
    GatewayHarness,
    PoolKey,
    assert_error_shape,
    chat_body,
)

pytestmark = pytest.mark.integration
HELLO = [{"role": "user", "content": "Hello there"}]


async def ask(gw: GatewayHarness, key: str, **extra: object) -> object:
    return await gw.client(key).chat.completions.create(model=MODEL, messages=HELLO, **extra)  # type: ignore[call-overload]


async def test_lifecycle_through_the_admin_api(gw: GatewayHarness) -> None:
    status, created = await gw.admin("POST", "/vkeys", {"name": "ci", "user_id": "alice"})
    assert status == 201 and created["success"] is True
    record = created["data"]
    secret = record["key"]
    assert secret.startswith("sk-llmr-") and record["key_hint"] == secret[:6] + "..." + secret[-4:]
    await ask(gw, secret)

    status, listed = await gw.admin("GET", "/vkeys")
    assert status == 200
    [shown] = listed["data"]
    assert shown["id"] == record["id"] and "key" not in shown and shown["revoked"] is False
    assert (await gw.admin("GET", f"/vkeys/{record['id']}"))[1]["data"]["user_id"] == "alice"

    status, revoked = await gw.admin("DELETE", f"/vkeys/{record['id']}")
    assert status == 200 and revoked["data"]["revoked"] is True
    # this worker trusts verified keys for GATEWAY_VKEY_CACHE_SECONDS, yet the revocation holds
    # at once: the limits script checks the revocation marker on every request
    with pytest.raises(openai.AuthenticationError):
        await ask(gw, secret)
    assert (await gw.admin("GET", "/vkeys"))[1]["data"][0]["revoked"] is True


async def test_revocation_holds_in_a_worker_that_cached_the_key(gw: GatewayHarness) -> None:
    secret = await gw.vkey(name="cached")
    other = gw.build_gateway()  # a second worker on the same Redis
    await other.start()
    try:
        cached = await other.vkeys.verify(secret)
        assert cached is not None
        await gw.gateway.vkeys.revoke(cached.id)
        assert await other.vkeys.verify(secret) is not None  # still in its cache...
        decision = await other.limits.acquire(user_id=cached.user, vkey=cached, tokens=0)
        assert decision.revoked and not decision.allowed  # ...but refused
    finally:
        await other.close()


async def test_unknown_ids_are_404(gw: GatewayHarness) -> None:
    for method in ("GET", "DELETE"):
        status, body = await gw.admin(method, "/vkeys/vk-nothing")
        assert status == 404 and assert_error_shape(body)["code"] == "vkey_not_found"


async def test_bad_specs_name_the_field(gw: GatewayHarness) -> None:
    for spec, field in (
        ({"rpm": 0}, "rpm"),
        ({"models": "gpt-4o"}, "models"),
        ({"colour": "red"}, "colour"),
        ({"user_id": "has space"}, "user_id"),
        ({"expires_in": -5}, "expires_in"),
    ):
        status, body = await gw.admin("POST", "/vkeys", spec)
        assert status == 400 and assert_error_shape(body)["param"] == field, spec


async def test_only_the_hash_is_stored(gw: GatewayHarness) -> None:
    secret = await gw.vkey(name="hashed")
    store = gw.gateway.store
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert await store.client.exists(store.keys.vkey(digest)) == 1
    for name in [k async for k in store.client.scan_iter(match=f"{{{store.keys.prefix}*")]:
        kind = await store.client.type(name)
        values = (
            list((await store.client.hgetall(name)).values())
            if kind == "hash"
            else [await store.client.get(name)]
            if kind == "string"
            else []
        )
        assert not any(secret in str(v) for v in values), name


async def test_allowed_models(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(pool=[PoolKey("multi", models=[MODEL, "gpt-4.1-mini"])])
    key = await gw.vkey(models=["gpt-4o*"])
    await ask(gw, key)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await gw.client(key).chat.completions.create(model="gpt-4.1-mini", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_allowed" and caught.value.param == "model"
    listed = [m.id for m in (await gw.client(key).models.list()).data]
    assert listed == [MODEL]
    everything = [m.id for m in (await gw.client(await gw.vkey()).models.list()).data]
    assert everything == ["gpt-4.1-mini", MODEL]


async def test_expired_keys_are_refused(gw: GatewayHarness) -> None:
    vkeys = gw.gateway.vkeys
    record, key = await vkeys.create(VirtualKeySpec(expires_in=0.3))
    await ask(gw, key)
    expires_at = record.expires_at
    assert expires_at is not None

    async def expired() -> bool:  # by the clock the gateway judges expiry with
        return await vkeys._now() > expires_at

    await eventually(expired)
    with pytest.raises(openai.AuthenticationError):
        await ask(gw, key)


async def test_a_key_rpm_budget(gw: GatewayHarness) -> None:
    small, other = await gw.vkey(rpm=2), await gw.vkey(rpm=2)
    await ask(gw, small)
    await ask(gw, small)
    with pytest.raises(openai.RateLimitError) as caught:
        await ask(gw, small)
    assert caught.value.code == "key_rpm_limit_exceeded"
    assert 25 <= int(caught.value.response.headers["retry-after"]) <= 30
    await ask(gw, other)  # budgets are per key
    assert gw.sim is not None and gw.sim.stats()["totals"]["admitted_requests"] == 3


async def test_a_key_tpm_budget_counts_the_tokens_really_used(gw: GatewayHarness) -> None:
    key = await gw.vkey(tpm=2000)
    # each is charged prompt + 1900 up front, then only what was used (about 35): refunded
    await ask(gw, key, max_tokens=1900)
    await ask(gw, key, max_tokens=1900)
    long_prompt = [{"role": "user", "content": "word " * 1400}]
    client = gw.client(key)
    await client.chat.completions.create(model=MODEL, messages=long_prompt, max_tokens=100)  # type: ignore[arg-type]
    # about 1,500 tokens really used in all: a request that may use 1,000 more must wait
    with pytest.raises(openai.RateLimitError) as caught:
        await ask(gw, key, max_tokens=1000)
    assert caught.value.code == "key_tpm_limit_exceeded"
    await ask(gw, key, max_tokens=100)  # what is left still fits a small request
    with pytest.raises(openai.BadRequestError) as too_large:
        await ask(gw, key, max_tokens=5000)  # can never fit this key's budget
    assert too_large.value.code == "request_too_large" and too_large.value.param == "max_tokens"


async def test_tags_choose_the_provider_keys(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        pool=[PoolKey("free-1", tags={"tier": "free"}), PoolKey("paid-1", tags={"tier": "paid"})]
    )
    key = await gw.vkey(tags={"tier": "paid"})
    for _ in range(4):
        await ask(gw, key)
    assert gw.sim is not None
    assert gw.sim.usage("paid-1", MODEL)["admitted_requests"] == 4
    assert "free-1" not in gw.sim.stats()["keys"]


async def test_per_user_limit_spans_the_users_keys(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(USER_RPM_DEFAULT=2)
    first, second = await gw.vkey(user_id="alice"), await gw.vkey(user_id="alice")
    bob = await gw.vkey(user_id="bob")
    await ask(gw, first)
    await ask(gw, second)
    for key in (first, second):
        with pytest.raises(openai.RateLimitError) as caught:
            await ask(gw, key)
        assert caught.value.code == "user_limit_exceeded"
    await ask(gw, bob)
    keyless = await gw.vkey()  # no user: not under the per-user limit (test_user_limits.py)
    for _ in range(3):
        await ask(gw, keyless)


async def test_global_limit(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(GLOBAL_RPM_MAX=3)
    keys = [await gw.vkey(user_id=f"user-{i}") for i in range(4)]
    for key in keys[:3]:
        await ask(gw, key)
    with pytest.raises(openai.RateLimitError) as caught:
        await ask(gw, keys[3])
    assert caught.value.code == "global_limit_exceeded"
    assert 15 <= int(caught.value.response.headers["retry-after"]) <= 20


async def test_anonymous_access_only_when_allowed(make_gateway: GatewayFactory) -> None:
    closed = await make_gateway()
    status, body, _ = await closed.request("POST", "/v1/chat/completions", body=chat_body())
    assert status == 401 and assert_error_shape(body)["type"] == "authentication_error"
    dev = await make_gateway(GATEWAY_ALLOW_ANONYMOUS=True, USER_RPM_DEFAULT=1)
    status, body, _ = await dev.request("POST", "/v1/chat/completions", body=chat_body())
    assert status == 200 and body["object"] == "chat.completion"
    status, body, headers = await dev.request("POST", "/v1/chat/completions", body=chat_body())
    assert status == 429 and assert_error_shape(body)["code"] == "user_limit_exceeded"
    assert int(headers["Retry-After"]) >= 1
