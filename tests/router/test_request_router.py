"""RequestRouter end to end against the provider simulator, on real Redis and the embedded store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import AllKeysExhaustedError
from kernel.masking import mask_secret
from router.simulator import FaultConfig
from tests.conftest import settings_for
from tests.helpers import local_stores
from tests.router.pool import PoolKey, sim_router
from tests.servers import free_port


def settings(request: pytest.FixtureRequest, **overrides: Any) -> Any:
    callspec = getattr(request.node, "callspec", None)
    kind = callspec.params.get("store", "redis") if callspec else "redis"
    overrides.setdefault("RESERVE_WAIT_SECONDS", 0)
    return settings_for(kind, request, **overrides)


@local_stores
async def test_send_one_shot_answers_in_document_004s_shape(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    keys = [PoolKey("a", rpm=60, tpm=100_000)]
    async with sim_router(settings(request), tmp_path, keys) as (router, _sim):
        answer = await router.send_one_shot(
            "Hello! Can you confirm?", model_preference="gpt-4o-mini"
        )
    assert answer["success"] is True and answer["error"] is None and answer["error_type"] is None
    assert answer["content"].startswith("Simulated openai reply")
    assert (
        answer["model"] == "gpt-4o-mini"
        and answer["provider"] == "openai"
        and answer["key_id"] == "a"
    )
    assert (
        answer["tokens"]["total"] == answer["tokens"]["prompt"] + answer["tokens"]["completion"] > 0
    )
    assert answer["attempts"] == 1 and answer["latency_ms"] > 0
    assert keys[0].secret not in str(answer) and answer["key"] == mask_secret(keys[0].secret)


@local_stores
async def test_a_429_cools_the_key_and_the_request_succeeds_on_another_at_once(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    keys = [PoolKey("limited", faults={"spurious_429_rate": 1.0}), PoolKey("fine")]
    async with sim_router(
        settings(request, KEY_ROTATION_STRATEGY="round_robin"), tmp_path, keys
    ) as (router, _sim):
        first = await router.send_one_shot("hi", "gpt-4o-mini")
        later = [await router.send_one_shot("hi", "gpt-4o-mini") for _ in range(4)]
        status = await router.key_manager.get_key_status("limited")
    assert (
        first["success"]
        and first["key_id"] == "fine"
        and first["attempts"] == 2
        and first["waited_ms"] == 0
    )
    assert all(a["success"] and a["key_id"] == "fine" and a["attempts"] == 1 for a in later)
    assert status["state"] == "cooldown" and status["rate_limited"] == 1


@local_stores
async def test_a_401_disables_the_key(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    keys = [PoolKey("revoked", revoked=True), PoolKey("fine")]
    async with sim_router(
        settings(request, KEY_ROTATION_STRATEGY="round_robin"), tmp_path, keys
    ) as (router, _sim):
        answers = [await router.send_one_shot("hi", "gpt-4o-mini") for _ in range(4)]
        status = await router.key_manager.get_key_status("revoked")
    assert all(a["success"] and a["key_id"] == "fine" for a in answers)
    assert sum(a["attempts"] for a in answers) == 5  # the revoked key was tried once, never again
    assert (status["state"], status["reason"]) == ("disabled", "auth")


@local_stores
async def test_server_errors_trip_the_breaker_after_three(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    keys = [PoolKey("broken", faults={"error_rate": 1.0}), PoolKey("fine")]
    async with sim_router(
        settings(request, KEY_ROTATION_STRATEGY="round_robin"), tmp_path, keys
    ) as (router, sim):
        answers = [await router.send_one_shot("hi", "gpt-4o-mini") for _ in range(6)]
        status = await router.key_manager.get_key_status("broken")
        broken_calls = sim.usage("broken", "gpt-4o-mini")
    assert all(a["success"] and a["key_id"] == "fine" for a in answers)
    assert status["state"] == "circuit_open" and status["failures"] == 3
    assert broken_calls["faults"] == {"server_error": 3}


@local_stores
async def test_a_bad_request_is_not_rotated(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("a"), PoolKey("b")]) as (
        router,
        _sim,
    ):
        answer = await router.send_one_shot("please SIM_CONTENT_FILTER this", "gpt-4o-mini")
    assert not answer["success"] and answer["attempts"] == 1
    assert answer["error_type"] in ("content_filtered", "bad_request")


@local_stores
async def test_connection_refused_releases_the_reservation(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    dead = PoolKey("dead", rpm=1, base_url=f"http://127.0.0.1:{free_port()}/v1")
    async with sim_router(
        settings(request, KEY_ROTATION_STRATEGY="round_robin"), tmp_path, [dead, PoolKey("alive")]
    ) as (router, _sim):
        answer = await router.send_one_shot("hi", "gpt-4o-mini")
        stats = await router.key_manager.engine.stats("dead")
    assert answer["success"] and answer["key_id"] == "alive" and answer["attempts"] == 2
    assert (stats["requests"], stats["released"]) == (0, 1)


@local_stores
async def test_no_room_answers_rate_limited_with_retry_after(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("a", rpm=1)]) as (router, sim):
        assert (await router.send_one_shot("hi", "gpt-4o-mini"))["success"]
        answer = await router.send_one_shot("again", "gpt-4o-mini")
        with pytest.raises(AllKeysExhaustedError):
            await router.send_one_shot("again", "gpt-4o-mini", raise_on_error=True)
        assert sim.usage("a", "gpt-4o-mini")["rate_limited"] == 0
    assert answer["success"] is False and answer["error_type"] == "rate_limited"
    assert 55 <= answer["retry_after"] <= 60 and answer["no_room"] == 1


@local_stores
async def test_waits_for_room_within_the_bound(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    keys = [PoolKey("a", rpm=600, extra={"rpm_burst": 1})]
    async with sim_router(settings(request, RESERVE_WAIT_SECONDS=2), tmp_path, keys) as (
        router,
        _sim,
    ):
        answers = [await router.send_one_shot("hi", "gpt-4o-mini") for _ in range(3)]
    assert all(a["success"] for a in answers)
    assert answers[1]["waited_ms"] > 0


async def _one_answer(router: Any, model: str, stream: bool) -> dict[str, Any]:
    if not stream:
        answer: dict[str, Any] = await router.send_one_shot("hi", model)
        return answer
    events = [e async for e in router.stream_one_shot("hi", model)]
    return dict(events[-1])


@pytest.mark.parametrize(
    ("provider", "stream"), [("openai", False), ("anthropic", False), ("openai", True)]
)
@local_stores
async def test_a_provider_bucket_reported_empty_is_not_called_again_until_it_has_room(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any, provider: str, stream: bool
) -> None:
    """Key "small" is configured far above what its provider really allows (or is also used
    outside this router): the provider allows 3 requests a minute. Its rate-limit headers say so
    on the third success (remaining 0), and the router calls it no more until it has room:
    round robin sends the rest to "big", and the provider never answers a 429."""
    model = "gpt-4o-mini" if provider == "openai" else "claude-3-5-haiku-latest"
    keys = [
        PoolKey("small", provider, rpm=3, models=[model], extra={"rpm": 600}),
        PoolKey("big", provider, rpm=600, models=[model]),
    ]
    strategy = {f"{provider.upper()}_KEY_ROTATION_STRATEGY": "round_robin"}
    async with sim_router(settings(request, **strategy), tmp_path, keys) as (router, sim):
        answers = [await _one_answer(router, model, stream) for _ in range(10)]
        small = sim.usage("small", model)
        status = await router.key_manager.get_key_status("small")
    assert all(a["success"] and a["attempts"] == 1 for a in answers), answers
    # at most its 3 (a call may go to "big" while "small"'s room is a few ms old: the margin)
    assert small["rate_limited"] == 0 and 2 <= small["admitted_requests"] <= 3, small
    assert [a["key_id"] for a in answers].count("small") == small["admitted_requests"]
    assert status["rate_limited"] == 0  # held, never refused


@local_stores
async def test_after_a_hold_waiting_calls_go_one_at_a_time_as_the_provider_refills(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    """One key, configured at 600 rpm, really allowed 30 (one every 2 s) by its provider. Its
    bucket is drained, then 4 calls arrive together and wait for room: when the provider's
    bucket has room for one, one goes, not all four, and the provider never answers a 429."""
    keys = [PoolKey("only", rpm=30, extra={"rpm": 600})]
    async with sim_router(settings(request, RESERVE_WAIT_SECONDS=3), tmp_path, keys) as (
        router,
        sim,
    ):
        drained = [await router.send_one_shot("hi", "gpt-4o-mini") for _ in range(30)]
        together = await asyncio.gather(
            *(router.send_one_shot("hi", "gpt-4o-mini") for _ in range(4))
        )
        usage = sim.usage("only", "gpt-4o-mini")
    assert all(a["success"] for a in drained)
    assert usage["rate_limited"] == 0, usage
    served = [a for a in together if a["success"]]
    refused = [a for a in together if not a["success"]]
    assert 1 <= len(served) <= 2 and all(a["error_type"] == "rate_limited" for a in refused)


@local_stores
async def test_alias_wildcard_and_fallback_chain(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    keys = [
        PoolKey("g1", "gemini", rpm=1, models=["gemini-2.0-flash"]),
        PoolKey("g2", "gemini", rpm=1, models=["gemini-2.0-flash"]),
        PoolKey("g3", "gemini", rpm=5, models=["gemini-2.0-flash-exp"]),
    ]
    routing = {
        "aliases": {"gpt-4": "gemini-2.0-flash", "*": ["gemini-2.0-flash"]},
        "fallbacks": {"gemini-2.0-flash": ["gemini-2.0-flash-exp"]},
    }
    async with sim_router(settings(request), tmp_path, keys, routing=routing) as (router, _sim):
        served = [await router.send_one_shot("hi", "gpt-4") for _ in range(3)]
        wildcard = await router.send_one_shot("hi", "claude-3-opus")
    # document 002's chain: key 1, key 2 of the same model, then the fallback model
    assert [(a["key_id"], a["model"]) for a in served][2] == ("g3", "gemini-2.0-flash-exp")
    assert {a["key_id"] for a in served[:2]} == {"g1", "g2"}
    assert all(a["requested_model"] == "gpt-4" and a["provider"] == "gemini" for a in served)
    assert (
        served[2]["fallback_used"]
        and wildcard["success"]
        and wildcard["model"] == "gemini-2.0-flash-exp"
    )


@local_stores
async def test_context_length_error_falls_back_to_a_larger_model(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    keys = [PoolKey("tiny", models=["sim-tiny"]), PoolKey("big", models=["gpt-4o-mini"])]
    routing = {"context_fallbacks": {"sim-tiny": ["gpt-4o-mini"]}}
    options = {"context_windows": {"sim-tiny": 100}}
    async with sim_router(
        settings(request), tmp_path, keys, routing=routing, sim_options=options
    ) as (router, _sim):
        short = await router.send_one_shot("hi", "sim-tiny")
        long = await router.send_one_shot("word " * 300, "sim-tiny")
        tiny_status = await router.key_manager.get_key_status("tiny")
    assert short["model"] == "sim-tiny"
    assert long["success"] and long["model"] == "gpt-4o-mini" and long["attempts"] == 2
    assert tiny_status["state"] == "healthy"  # the request's fault, not the key's


@local_stores
async def test_stream_yields_deltas_then_the_answer(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("a", rpm=100, tpm=100_000)]) as (
        router,
        _sim,
    ):
        events = [e async for e in router.stream_one_shot("stream please", "gpt-4o-mini")]
        await router.flush()
        status = await router.key_manager.get_key_status("a")
    deltas = [e["content"] for e in events if e["type"] == "delta"]
    done = events[-1]
    assert len(deltas) > 1 and done["type"] == "done" and done["success"]
    assert "".join(deltas) == done["content"]
    assert status["tpm_usage"]["used"] == done["tokens"]["total"]


@local_stores
async def test_a_stream_cut_midway_is_never_restarted_elsewhere(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    keys = [PoolKey("cut", faults={"stream_cut_rate": 1.0}), PoolKey("fine")]
    async with sim_router(
        settings(request, KEY_ROTATION_STRATEGY="round_robin"), tmp_path, keys
    ) as (router, _sim):
        events = [e async for e in router.stream_one_shot("stream please", "gpt-4o-mini")]
    done = events[-1]
    assert done["type"] == "done" and not done["success"] and done["partial"]
    assert done["attempts"] == 1 and done["key_id"] == "cut"
    assert done["content"] == "".join(e["content"] for e in events if e["type"] == "delta")


@local_stores
async def test_under_faults_every_request_ends_classified_and_nothing_stays_reserved(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    import asyncio

    faults = FaultConfig(error_rate=0.1, stream_cut_rate=0.1, reset_rate=0.05, malformed_rate=0.03)
    dead = PoolKey("dead", base_url=f"http://127.0.0.1:{free_port()}/v1")
    keys = [PoolKey(f"k{i}", rpm=10_000, tpm=10_000_000) for i in range(3)] + [dead]
    known = {
        "success",
        "server_error",
        "connection_error",
        "malformed_response",
        "provider_error",
        "timeout",
        "rate_limited",
    }
    async with sim_router(
        settings(request, CIRCUIT_BREAKER_THRESHOLD=1000), tmp_path, keys, faults=faults
    ) as (router, _sim):

        async def one(i: int) -> str:
            if i % 2:
                events = [e async for e in router.stream_one_shot(f"s{i}", "gpt-4o-mini")]
                answer = events[-1]
            else:
                answer = await router.send_one_shot(f"c{i}", "gpt-4o-mini")
            return "success" if answer["success"] else str(answer["error_type"])

        outcomes = await asyncio.gather(*(one(i) for i in range(200)))
        store_ = router.key_manager.store
        states = [
            await store_.client.hget(k, "state")
            async for k in store_.client.scan_iter(match=store_.keys.reservation("*"))
        ]
        dead_stats = await router.key_manager.engine.stats("dead")
    assert set(outcomes) <= known and outcomes.count("success") > 150
    assert states and set(states) <= {"settled", "released"}
    assert dead_stats["requests"] == 0 and dead_stats["released"] >= 1


@local_stores
async def test_health_check_reports_every_part(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("a")]) as (router, _sim):
        health = await router.health_check()
    assert health["healthy"] is True
    assert health["key_manager"]["keys"] == {"total": 1, "active": 1, "healthy": 1}
    assert health["conversation_store"]["healthy"] is True and health["secret_store"]["ok"] is True


@local_stores
async def test_health_check_with_no_active_key_is_unhealthy(
    request: pytest.FixtureRequest, tmp_path: Path, store: Any
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("a")]) as (router, _sim):
        await router.key_manager.update_key("a", active=False)
        health = await router.health_check()
    assert health["healthy"] is False
    assert health["key_manager"]["error"] == "no active API keys configured"
    assert health["key_manager"]["keys"]["active"] == 0
