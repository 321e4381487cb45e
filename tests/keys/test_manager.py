"""KeyManager: strategies, health state machines, live changes, status shapes (real Redis + embedded)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import (
    AllKeysExhaustedError,
    ConfigError,
    ProviderAuthError,
    ProviderConnectionError,
    RateLimitedError,
    ServerError,
)
from keys.manager import KeyManager, KeySelection
from keys.models import APIKey
from tests.conftest import settings_for
from tests.helpers import both_pool_shards, eventually, local_stores, log_events
from tests.keys.engine_helpers import ManualClock
from tests.keys.manager_helpers import fake_secret, manager_for

Factory = Callable[..., Any]


def spec(key_id: str, **fields: Any) -> dict[str, Any]:
    return {"key_id": key_id, "model_name": "gpt-4o", "provider": "openai", "rpm": 1000, **fields}


@pytest.fixture
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    made: list[KeyManager] = []
    callspec = getattr(request.node, "callspec", None)
    store_kind = callspec.params.get("store", "redis") if callspec else "redis"

    async def factory(
        keys: list[dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        clock: ManualClock | None = None,
        prefix: str | None = None,
        **overrides: Any,
    ) -> KeyManager:
        if prefix:
            overrides["REDIS_KEY_PREFIX"] = prefix
        settings = settings_for(store_kind, request, **overrides)
        sub = tmp_path / f"m{len(made)}"
        sub.mkdir()
        manager, _ = manager_for(settings, sub, keys, env, clock)
        made.append(manager)
        await manager.start()
        return manager

    yield factory
    for manager in made:
        await manager.close()


@both_pool_shards
@local_stores
async def test_zero_configuration_single_key_works(make: Factory, store: Any) -> None:
    secret = fake_secret("sk-proj-")
    manager = await make(env={"OPENAI_API_KEY": secret})
    selection = await manager.select_key(tokens_needed=10)
    assert selection.key.provider == "openai"
    assert await manager.get_secret(selection) == secret
    assert selection.masked_key == selection.key_id  # before the secret was read
    assert manager.masked(selection.key_id) == secret[:11] + "..." + secret[-4:]
    await manager.record_success(selection, actual_tokens=5)
    assert secret not in repr(selection) and secret not in json.dumps(selection.as_dict())


@local_stores
async def test_document_001_environment_keys_rotate_round_robin(make: Factory, store: Any) -> None:
    secrets_ = [fake_secret("sk-") for _ in range(3)]
    manager = await make(env={"OPENAI_API_KEYS": ",".join(secrets_)})
    assert manager.strategy_for_model("gpt-4o-mini") == "round_robin"
    picks = []
    for _ in range(9):  # each answered (keys with no limits take one call until their first)
        selection = await manager.select_key("gpt-4o-mini")
        await manager.record_success(selection, 10)
        picks.append(selection.key_id)
    assert picks[:3] == picks[3:6] == picks[6:] and len(set(picks[:3])) == 3


@both_pool_shards
@local_stores
async def test_configured_strategy_wins(make: Factory, store: Any) -> None:
    manager = await make(keys=[spec("a"), spec("b")], OPENAI_KEY_ROTATION_STRATEGY="least_used")
    assert manager.strategy_for_model("gpt-4o") == "least_used"
    other = await make(keys=[spec("a"), spec("b")])
    assert other.strategy_for_model("gpt-4o") == "capacity"


@both_pool_shards
@local_stores
async def test_rate_limit_uses_what_the_provider_said_then_backs_off(
    make: Factory, store: Any
) -> None:
    clock = ManualClock()
    manager = await make(keys=[spec("a"), spec("b")], clock=clock)
    sel = await manager.select_key("gpt-4o", exclude=["b"])
    assert (
        await manager.record_failure(sel, RateLimitedError("429", retry_after=12)) == "rate_limited"
    )
    status = await manager.get_key_status("a")
    assert status["state"] == "cooldown" and status["in_cooldown"]
    picks = {(await manager.select_key("gpt-4o")).key_id for _ in range(4)}
    assert picks == {"b"}
    clock.advance(12.5)
    sel = await manager.select_key("gpt-4o", exclude=["b"])
    await manager.record_failure(
        sel, RateLimitedError("429 again")
    )  # nothing said: the default, 60 s
    assert (await manager.get_key_status("a"))["until"] is not None


@both_pool_shards
@local_stores
async def test_auth_failure_disables_until_reload(
    make: Factory, store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    manager = await make(keys=[spec("a"), spec("b")], clock=clock)
    sel = await manager.select_key("gpt-4o", exclude=["b"])
    with log_events(caplog) as logs:
        await manager.record_failure(sel, ProviderAuthError("401"))
    assert any("disabled" in e["event"] and e.get("reason") == "auth" for e in logs)
    clock.advance(86_400)
    await manager.clear_cooldown("a")
    assert {(await manager.select_key("gpt-4o")).key_id for _ in range(4)} == {"b"}
    assert (await manager.get_key_status("a"))["state"] == "disabled"
    await manager.reload_keys()
    assert "a" in {(await manager.select_key("gpt-4o")).key_id for _ in range(6)}


@both_pool_shards
@local_stores
async def test_breaker_opens_after_three_then_half_opens_with_one_probe(
    make: Factory, store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    manager = await make(keys=[spec("a"), spec("b")], clock=clock)
    with log_events(caplog) as logs:
        for _ in range(3):
            sel = await manager.select_key("gpt-4o", exclude=["b"])
            await manager.record_failure(sel, ServerError("502"))
    assert [e for e in logs if "Circuit breaker opened" in e["event"]]
    assert (await manager.get_key_status("a"))["state"] == "circuit_open"
    clock.advance(300)
    probe = await manager.select_key("gpt-4o", exclude=["b"])
    assert probe.reservation.probe
    assert (await manager.get_key_status("a"))["state"] == "half_open"
    await manager.record_success(probe)
    assert (await manager.get_key_status("a"))["state"] == "healthy"


@both_pool_shards
@local_stores
async def test_an_unreachable_endpoint_gives_the_request_back_and_cools_the_key_with_backoff(
    make: Factory, store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    manager = await make(keys=[spec("a", rpm=1), spec("b")], clock=clock)
    refused = ProviderConnectionError("refused", reached_provider=False)
    cooldowns = []
    for _ in range(2):
        sel = await manager.select_key("gpt-4o", exclude=["b"])  # rpm 1: only if given back
        assert await manager.record_failure(sel, refused) == "unreachable"
        before = await manager.engine.health("a")
        await manager.record_failure(sel, refused)  # idempotent: a repeat changes nothing
        assert await manager.engine.health("a") == before
        status = await manager.get_key_status("a")
        assert (status["state"], status["reason"]) == ("cooldown", "unreachable")
        cooldowns.append((await manager.engine.health("a"))["until"] - clock.now)
        with pytest.raises(AllKeysExhaustedError):
            await manager.select_key("gpt-4o", exclude=["b"])
        clock.advance(cooldowns[-1])
    assert cooldowns == [pytest.approx(5), pytest.approx(10)]  # x COOLDOWN_BACKOFF_FACTOR
    sel = await manager.select_key("gpt-4o", exclude=["b"])
    with log_events(caplog) as logs:
        await manager.record_failure(sel, refused)  # the third counts toward the breaker
    assert (await manager.get_key_status("a"))["state"] == "circuit_open"
    assert [e for e in logs if "Circuit breaker opened" in e["event"]]
    stats = await manager.engine.stats("a")
    assert (stats["requests"], stats["released"], stats["failures"]) == (0, 3, 3)


@both_pool_shards
@local_stores
async def test_all_keys_exhausted_says_which_why_and_until_when(make: Factory, store: Any) -> None:
    clock = ManualClock()
    manager = await make(
        keys=[spec("a"), spec("b")], clock=clock, RESET_BREAKERS_WHEN_ALL_UNHEALTHY=False
    )
    await manager.mark_key_unhealthy("a", 120, reason="maintenance")
    sel = await manager.select_key("gpt-4o")
    await manager.record_failure(sel, ProviderAuthError("401"))
    with pytest.raises(AllKeysExhaustedError) as info:
        await manager.select_key("gpt-4o")
    reasons = {k.key_id: (k.reason, k.until) for k in info.value.keys}
    assert reasons["a"][0] == "cooldown" and reasons["a"][1] == pytest.approx(clock.now + 120)
    assert reasons["b"] == ("auth", None)
    assert info.value.retry_after == pytest.approx(120)


@both_pool_shards
@local_stores
async def test_every_key_open_answers_the_upstream_failure_at_once_and_never_resets(
    make: Factory, store: Any
) -> None:
    clock = ManualClock()
    manager = await make(keys=[spec("a"), spec("b"), spec("c")], clock=clock)
    for key_id in ("a", "b"):
        for _ in range(3):
            sel = await manager.select_key("gpt-4o", exclude=[k for k in "abc" if k != key_id])
            await manager.record_failure(sel, ServerError("500"))
    sel = await manager.select_key("gpt-4o", exclude=["a", "b"])
    await manager.record_failure(sel, ProviderAuthError("401"))
    for _ in range(3):  # RESET_BREAKERS_WHEN_ALL_UNHEALTHY (default true) resets nothing
        with pytest.raises(AllKeysExhaustedError) as info:
            await manager.select_key("gpt-4o", wait=5)
        upstream = info.value.upstream
        assert isinstance(upstream, ServerError) and upstream.error_type == "server_error"
        assert upstream.retry_after == pytest.approx(300) == info.value.retry_after
    assert {(await manager.get_key_status(k))["state"] for k in "ab"} == {"circuit_open"}
    assert (await manager.get_key_status("c"))["state"] == "disabled"
    clock.advance(300)  # one probe per key, then the upstream failure again
    probes = [await manager.select_key("gpt-4o") for _ in range(2)]
    assert sorted(p.key_id for p in probes) == ["a", "b"] and all(
        p.reservation.probe for p in probes
    )
    with pytest.raises(AllKeysExhaustedError) as info:
        await manager.select_key("gpt-4o")
    assert info.value.reason == "probing" and isinstance(info.value.upstream, ServerError)


@both_pool_shards
@local_stores
async def test_a_cancelled_probe_frees_the_probe_without_closing_the_circuit(
    make: Factory, store: Any
) -> None:
    clock = ManualClock()
    manager = await make(keys=[spec("a")], clock=clock)
    for _ in range(3):
        await manager.record_failure(await manager.select_key("gpt-4o"), ServerError("500"))
    clock.advance(300)
    probe = await manager.select_key("gpt-4o")
    assert probe.reservation.probe
    assert await manager.record_failure(probe, asyncio.CancelledError()) == "cancelled"
    assert (await manager.engine.health("a"))["state"] == "open"  # not closed, not held
    again = await manager.select_key("gpt-4o")  # at once, no new timeout
    assert again.reservation.probe
    await manager.record_success(again)
    assert (await manager.get_key_status("a"))["state"] == "healthy"


@both_pool_shards
@local_stores
async def test_waits_for_room_up_to_the_bound(make: Factory, store: Any) -> None:
    manager = await make(keys=[spec("a", rpm=600, rpm_burst=1)])
    await manager.select_key("gpt-4o")
    with pytest.raises(AllKeysExhaustedError):
        await manager.select_key("gpt-4o")
    await manager.select_key("gpt-4o", wait=1.0)  # room returns after 0.1 s


@both_pool_shards
@local_stores
async def test_live_add_update_remove(make: Factory, store: Any) -> None:
    manager = await make(keys=[spec("a")], env={"API_KEY_NEW": fake_secret()})
    await manager.add_key(APIKey(key_id="new", model_name="gpt-4o", provider="openai", rpm=1000))
    assert (await manager.select_key("gpt-4o", exclude=["a"])).key_id == "new"
    with pytest.raises(ConfigError, match="already exists"):
        await manager.add_key(APIKey(key_id="new", model_name="gpt-4o", provider="openai"))
    await manager.update_key("new", rpm=2, rpm_burst=2)  # usage carries over: 1 of 2 used
    await manager.deactivate_key("a")
    assert (await manager.select_key("gpt-4o")).key_id == "new"
    with pytest.raises(AllKeysExhaustedError):
        await manager.select_key("gpt-4o")
    with pytest.raises(ConfigError, match="rpm"):
        await manager.update_key("new", rpm=-5)
    await manager.remove_key("new")
    assert "new" not in manager.keys


@both_pool_shards
@local_stores
async def test_live_removal_while_requests_run_loses_nothing(make: Factory, store: Any) -> None:
    manager = await make(keys=[spec(f"k{i}", rpm=100_000) for i in range(4)])
    removed, under_way = asyncio.Event(), asyncio.Event()
    late: list[str] = []
    done = 0

    async def worker() -> None:
        nonlocal done
        for _ in range(60):
            was_removed = removed.is_set()
            sel = await manager.select_key("gpt-4o")
            if was_removed and sel.key_id == "k0":
                late.append(sel.key_id)
            await asyncio.sleep(0)
            await manager.record_success(sel, actual_tokens=1)
            done += 1
            if done == 8 * 10:  # a sixth of the requests settled, the rest to come
                under_way.set()

    async def remover() -> None:
        await under_way.wait()
        await manager.remove_key("k0")
        removed.set()

    await asyncio.gather(*(worker() for _ in range(8)), remover())
    assert done == 8 * 60 and late == []


@both_pool_shards
@local_stores
async def test_changes_made_by_one_process_reach_the_others(make: Factory, store: Any) -> None:
    from tests.conftest import unique_prefix

    prefix = unique_prefix()
    first = await make(keys=[spec("a")], prefix=prefix)
    second = await make(keys=[spec("a")], prefix=prefix, env={"API_KEY_B": fake_secret()})
    await first.add_key(APIKey(key_id="b", model_name="gpt-4o", provider="openai", rpm=1000))

    async def second_serves_b() -> bool:  # it checks for changes at most once a second
        try:
            return (await second.select_key("gpt-4o", exclude=["a"])).key_id == "b"
        except AllKeysExhaustedError:
            return False

    await eventually(second_serves_b, timeout=5)
    await second.mark_key_unhealthy("b", 300)
    assert {(await first.select_key("gpt-4o")).key_id for _ in range(4)} == {"a"}


async def test_a_key_another_process_just_added_is_never_picked_in_a_loop(make: Factory) -> None:
    """The store offers a key this process has not loaded yet (added by another process less
    than a second ago): the selection catches up with the change at once, instead of giving the
    key back and picking it again for ever."""
    from tests.conftest import unique_prefix

    prefix = unique_prefix()
    first = await make(keys=[spec("a", rpm=1)], prefix=prefix)
    second = await make(keys=[spec("a", rpm=1)], prefix=prefix, env={"API_KEY_B": fake_secret()})
    assert (await second.select_key("gpt-4o")).key_id == "a"  # a is full now
    await first.add_key(APIKey(key_id="b", model_name="gpt-4o", provider="openai", rpm=1000))
    picked = await asyncio.wait_for(second.select_key("gpt-4o"), timeout=30)
    assert picked.key_id == "b" and "b" in second.keys


@both_pool_shards
@local_stores
async def test_status_answers_have_the_documents_shapes(make: Factory, store: Any) -> None:
    secret = fake_secret("sk-proj-")
    manager = await make(
        keys=[spec("a", tpm=10_000, rpd=100, tags={"tier": "free"})], env={"API_KEY_A": secret}
    )
    sel = await manager.select_key("gpt-4o", tokens_needed=500)
    await manager.get_secret(sel)
    await manager.record_success(sel, actual_tokens=300)
    status = await manager.get_key_status("a")
    assert status["key_id"] == "a" and status["in_cooldown"] is False
    assert status["rpm_usage"]["count"] == 1 and status["tpm_usage"]["used"] == 300
    assert status["rpd_usage"]["count"] == 1 and status["masked_key"].startswith("sk-proj-")
    assert (await manager.get_rpm_usage("a"))["limit"] == 1000
    stats = await manager.get_stats()
    assert (
        stats["total_keys"] == 1
        and stats["healthy_keys"] == 1
        and stats["rotation_strategy"] == "capacity"
    )
    entry = stats["keys"][status["masked_key"]]
    assert {
        "requests",
        "successes",
        "failures",
        "circuit_open",
        "rate_limited",
        "last_used",
    } <= set(entry)
    health = (await manager.get_health_status())["a"]
    assert {"model", "active", "last_used", "success_count", "error_count", "in_cooldown"} <= set(
        health
    )
    everything = json.dumps([status, stats, health, await manager.get_all_key_statuses()])
    assert secret not in everything


@both_pool_shards
@local_stores
async def test_save_keys_writes_metadata_only(make: Factory, store: Any, tmp_path: Path) -> None:
    env_secret = fake_secret("sk-")
    manager = await make(
        keys=[spec("a")], env={"OPENAI_API_KEY": env_secret, "API_KEY_RUNTIME": fake_secret()}
    )
    await manager.add_key(APIKey(key_id="runtime", model_name="gpt-4o", provider="openai", rpm=5))
    path = await manager.save_keys(tmp_path / "saved.json")
    text = path.read_text()
    saved = {entry["key_id"] for entry in json.loads(text)["keys"]}
    assert saved == {"a", "runtime"}  # the provider variable's key stays in the environment
    assert env_secret not in text and "sk-test-" not in text


async def test_selection_reads_like_document_003(make: Factory) -> None:
    manager = await make(keys=[spec("flash_01", model_name="gemini-2.5-flash", provider="gemini")])
    key_info = await manager.select_key(model_preference="gemini-2.5-flash", tokens_needed=1000)
    assert isinstance(key_info, KeySelection)
    assert key_info["key_id"] == "flash_01" and key_info["tokens"] == 1000


async def test_cooldown_in_one_process_is_honoured_by_another_at_once(
    make: Factory, redis_url: str
) -> None:
    import multiprocessing

    from tests.conftest import unique_prefix
    from tests.keys.manager_workers import cool_down_key

    prefix = unique_prefix()
    manager = await make(keys=[spec("a"), spec("b")], prefix=prefix)
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=cool_down_key, args=(redis_url, prefix, "a", 600))
    proc.start()
    await asyncio.get_running_loop().run_in_executor(None, proc.join, 60)
    assert proc.exitcode == 0
    assert Counter([(await manager.select_key("gpt-4o")).key_id for _ in range(6)]) == {"b": 6}
