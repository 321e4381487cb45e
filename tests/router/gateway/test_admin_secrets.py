"""The admin API cannot send a key's secret somewhere new; unauthenticated routes do not hit the
secret store on every request; /metrics can be protected by a token."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kernel.settings import Settings
from router.gateway.admin_policy import AdminPolicy
from router.gateway.ops import CheckCache
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL, GatewayHarness, assert_error_shape, chat_body

pytestmark = pytest.mark.integration


def refused(status: int, body: Any, field: str) -> bool:
    error = assert_error_shape(body)
    return status == 403 and error["param"] == field and error["code"] == "forbidden_value"


async def test_a_key_cannot_be_pointed_at_a_new_host(gw: GatewayHarness) -> None:
    for url in (
        "https://attacker.example.com/v1",
        "http://api.openai.com/v1",  # an official host, but in clear text
        "https://api.openai.com.attacker.example/v1",
        "http://127.0.0.1:1/v1",  # loopback, another port than the configured simulator
    ):
        status, body = await gw.admin("PATCH", "/keys/pool-a", {"base_url": url})
        assert refused(status, body, "base_url"), (url, body)
    status, body = await gw.admin(
        "POST",
        "/keys",
        {
            "key_id": "k-new",
            "provider": "openai",
            "model_name": MODEL,
            "base_url": "https://attacker.example.com/v1",
        },
    )
    assert refused(status, body, "base_url"), body
    manager = gw.gateway.router.key_manager
    assert manager.keys["pool-a"].base_url == gw.sim.base_url_for("openai")  # type: ignore[union-attr]
    assert "k-new" not in manager.keys


async def test_allowed_hosts_and_configured_origins_are_accepted(gw: GatewayHarness) -> None:
    assert gw.sim is not None
    status, body = await gw.admin(
        "PATCH", "/keys/pool-a", {"base_url": "https://api.openai.com/v1"}
    )
    assert status == 200, body
    # the origin keys.json configured (the simulator, over http) is allowed, whatever the path
    status, body = await gw.admin(
        "PATCH", "/keys/pool-a", {"base_url": gw.sim.base_url_for("openai") + "/"}
    )
    assert status == 200, body
    vkey = await gw.vkey(name="t")
    status, _, _ = await gw.request("POST", "/v1/chat/completions", token=vkey, body=chat_body())
    assert status == 200


async def test_the_allowed_hosts_come_from_the_setting(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(ADMIN_ALLOWED_BASE_URL_HOSTS="*.example.com")
    status, body = await gw.admin("PATCH", "/keys/pool-a", {"base_url": "https://llm.example.com"})
    assert status == 200, body
    status, body = await gw.admin("PATCH", "/keys/pool-b", {"base_url": "https://api.openai.com"})
    assert refused(status, body, "base_url"), body


@pytest.mark.parametrize(
    ("ref", "allowed"),
    [
        ("ROUTER_MASTER_KEY", False),
        ("env:ROUTER_MASTER_KEY", False),
        ("env:AWS_SECRET_ACCESS_KEY", False),
        ("API_KEY_../x", False),
        ("API_KEY_SPARE", True),
        ("env:OPENAI_KEY_2", True),
    ],
)
async def test_a_secret_ref_must_be_a_key_secrets_name(
    gw: GatewayHarness, ref: str, allowed: bool
) -> None:
    status, body = await gw.admin("PATCH", "/keys/pool-a", {"secret_ref": ref})
    if allowed:
        assert status == 200, body
    else:
        assert refused(status, body, "secret_ref"), body
        assert gw.gateway.router.key_manager.keys["pool-a"].secret_ref is None


async def test_a_secret_ref_spelt_as_api_key_is_checked_too(gw: GatewayHarness) -> None:
    entry = {"key_id": "k-new", "provider": "openai", "model_name": MODEL}
    status, body = await gw.admin("POST", "/keys", {**entry, "api_key": "ROUTER_MASTER_KEY"})
    assert refused(status, body, "secret_ref"), body
    status, body = await gw.admin("POST", "/keys", {**entry, "api_key": "API_KEY_K_NEW"})
    assert status == 201, body


async def test_readiness_checks_the_secret_store_once_per_interval(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(READINESS_CACHE_SECONDS=300)
    secrets = gw.gateway.router.key_manager.secrets
    manager = gw.gateway.router.key_manager
    calls = {"ping": 0, "statuses": 0}
    ping, statuses = secrets.impl.ping, manager.get_all_key_statuses

    async def counted_ping() -> None:
        calls["ping"] += 1
        await ping()

    async def counted_statuses() -> list[dict[str, Any]]:
        calls["statuses"] += 1
        return await statuses()

    secrets.impl.ping = counted_ping  # type: ignore[method-assign]
    manager.get_all_key_statuses = counted_statuses  # type: ignore[method-assign]
    answers = await asyncio.gather(*(gw.request("GET", "/health/ready") for _ in range(50)))
    answers += [await gw.request("GET", "/health/ready") for _ in range(50)]
    assert all(status == 200 and body["ready"] for status, body, _ in answers)
    for _ in range(20):
        status, body, _ = await gw.request("GET", "/status")
        assert status == 200 and body["keys"]["total"] == 2
    assert calls == {"ping": 1, "statuses": 1}


async def test_without_a_cache_every_hit_checks(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(READINESS_CACHE_SECONDS=0)
    secrets = gw.gateway.router.key_manager.secrets
    calls = 0
    ping = secrets.impl.ping

    async def counted_ping() -> None:
        nonlocal calls
        calls += 1
        await ping()

    secrets.impl.ping = counted_ping  # type: ignore[method-assign]
    for _ in range(10):
        assert (await gw.request("GET", "/health/ready"))[0] == 200
    assert calls == 10


async def test_the_cache_checks_again_after_its_interval() -> None:
    now = [100.0]
    cache = CheckCache(2.0, clock=lambda: now[0])
    computed = 0

    async def check() -> int:
        nonlocal computed
        computed += 1
        return computed

    assert [await cache.get(check) for _ in range(5)] == [1] * 5
    now[0] += 1.999
    assert await cache.get(check) == 1
    now[0] += 0.001
    assert await cache.get(check) == 2 and computed == 2


async def test_draining_is_reported_at_once_whatever_the_cache(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(READINESS_CACHE_SECONDS=300)
    assert (await gw.request("GET", "/health/ready"))[0] == 200
    gw.gateway.draining = True
    try:
        status, body, _ = await gw.request("GET", "/health/ready")
        assert status == 503 and body["reason"].startswith("draining")
    finally:
        gw.gateway.draining = False


async def test_metrics_are_open_without_a_token(gw: GatewayHarness) -> None:
    status, body, _ = await gw.request("GET", "/metrics")
    assert status == 200 and "llm_router_" in body


async def test_metrics_need_the_token_when_one_is_set(make_gateway: GatewayFactory) -> None:
    token = "metrics-" + "x7" * 16
    gw = await make_gateway(METRICS_TOKEN=token)
    for sent in (None, token + "x", gw.master, "Bearer"):
        status, body, _ = await gw.request("GET", "/metrics", token=sent)
        assert status == 401, sent
        error = assert_error_shape(body)
        assert error["code"] == "invalid_metrics_token" and token not in error["message"]
    status, body, _ = await gw.request("GET", "/metrics", token=token)
    assert status == 200 and "llm_router_" in body
    settings = Settings.from_env({}, METRICS_TOKEN=token)
    assert token not in repr(settings) and token not in str(settings.model_dump())


def test_with_a_vault_store_any_name_in_it_is_allowed_but_not_the_environment() -> None:
    vault = AdminPolicy.build(Settings.from_env({}, SECRET_STORE_TYPE="vault"), [])
    assert vault.secret_ref_allowed("openai/prod-1") and vault.secret_ref_allowed("API_KEY_X")
    assert not vault.secret_ref_allowed("env:ROUTER_MASTER_KEY")
    assert not vault.secret_ref_allowed("openai/../../sys/token")
    explicit = AdminPolicy.build(
        Settings.from_env({}, SECRET_STORE_TYPE="vault", ADMIN_ALLOWED_SECRET_REFS="team-a/*"), []
    )
    assert explicit.secret_ref_allowed("team-a/key")
    assert not explicit.secret_ref_allowed("team-b/key") and not explicit.secret_ref_allowed(
        "API_KEY_X"
    )
