"""Leases: a pool key handed to the official SDKs, against the provider simulator.

Each official SDK (openai, anthropic, google-genai) really makes its call with the client a lease
configures; the lease is reserved like any call, settled with the usage its response reports (one
usage record per lease, with its cost), its failures classified like the router's own (cooldown
after a 429, the key disabled after a 401) and ``execute_with_retry`` rotates to another key.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google import genai

from kernel.errors import (
    AllKeysExhaustedError,
    BudgetExceededError,
    ClientRequestError,
    ModelNotAvailableError,
    ProviderAuthError,
    ProviderConnectionError,
    RateLimitedError,
)
from kernel.prices import default_table
from kernel.settings import Settings
from kernel.usage_record import UsageRecord
from lua.usage_records import NANOS
from router.lease import Lease
from router.request_router import RequestRouter
from tests.conftest import settings_for
from tests.helpers import log_events
from tests.router.pool import MODELS, PoolKey, sim_router
from tests.servers import free_port

OPENAI, CLAUDE, GEMINI = MODELS["openai"], MODELS["anthropic"], MODELS["gemini"]
HELLO = [{"role": "user", "content": "Say hello"}]

# google-genai's asyncio client subclasses aiohttp.ClientSession, which aiohttp warns about
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)


def settings(request: pytest.FixtureRequest, **overrides: Any) -> Settings:
    overrides.setdefault("RESERVE_WAIT_SECONDS", 0)
    return settings_for("redis", request, **overrides)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def records_of(router: RequestRouter) -> list[UsageRecord]:
    await router.flush()
    store = router.key_manager.store
    entries = await store.client.xrange(store.keys.usage_stream)
    out = []
    for _, fields in entries:
        raw = {_text(k): _text(v) for k, v in fields.items()}
        out.append(UsageRecord.from_json(raw["r"]))
    return out


def cost_of(model: str, prompt: int, completion: int, cached: int = 0) -> float:
    cost = default_table().cost(model, prompt, completion, cached)
    assert cost is not None
    return cost.usd


def first(key: str, model: str) -> PoolKey:
    """A key tried before the others (priority 1; ``second`` keys are priority 2)."""
    return PoolKey(key, provider=_provider(model), models=[model])


def second(key: str, model: str, **kw: Any) -> PoolKey:
    return PoolKey(
        key,
        provider=_provider(model),
        extra={"models": [{"model": model, "priority": 2}]},
        **kw,
    )


def _provider(model: str) -> str:
    return next(p for p, m in MODELS.items() if m == model)


async def test_openai_async_client_call_is_reserved_settled_and_recorded_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    key = PoolKey("k1")
    async with sim_router(settings(request), tmp_path, [key]) as (router, sim):
        async with router.lease(OPENAI, tokens=200, user="ann") as lease:
            assert (lease.key_id, lease.provider, lease.model) == ("k1", "openai", OPENAI)
            assert lease.secret == key.secret and lease.base_url == sim.base_url_for("openai")
            client = lease.async_client()
            assert isinstance(client, openai.AsyncOpenAI) and client.max_retries == 0
            response = await client.chat.completions.create(model=lease.model, messages=HELLO)
            lease.record(response)
        records = await records_of(router)
        status = await router.key_manager.get_key_status("k1")
    assert response.choices[0].message.content
    assert [r.key_id for r in sim.requests()] == ["k1"]
    usage = response.usage
    assert usage is not None and usage.prompt_tokens > 0
    [record] = records
    assert (record.key_id, record.model, record.success, record.user) == ("k1", OPENAI, True, "ann")
    assert (record.prompt_tokens, record.completion_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert record.usage_reported is True
    assert record.cost == pytest.approx(
        cost_of(OPENAI, usage.prompt_tokens, usage.completion_tokens)
    )
    assert (status["successes"], status["failures"]) == (1, 0)
    # settled to the response's tokens (200 were reserved)
    assert status["tpm_usage"]["used"] == usage.prompt_tokens + usage.completion_tokens, status


async def test_anthropic_blocking_client_in_execute_with_retry_records_its_response(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    def call(lease: Lease) -> Any:  # run in a thread: the blocking client
        client = lease.client()
        assert isinstance(client, anthropic.Anthropic) and client.max_retries == 0
        return client.messages.create(model=lease.model, max_tokens=64, messages=HELLO)

    async with sim_router(settings(request), tmp_path, [PoolKey("c1", "anthropic")]) as (
        router,
        sim,
    ):
        message = await router.execute_with_retry(call, model=CLAUDE, tokens=300)
        [record] = await records_of(router)
    assert isinstance(message, anthropic.types.Message) and message.content
    assert [r.key_id for r in sim.requests()] == ["c1"]
    usage = message.usage
    assert (record.key_id, record.provider, record.success) == ("c1", "anthropic", True)
    assert (record.prompt_tokens, record.completion_tokens) == (
        usage.input_tokens,
        usage.output_tokens,
    )
    assert record.cost == pytest.approx(cost_of(CLAUDE, usage.input_tokens, usage.output_tokens))


async def test_google_genai_async_client_generate_content(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("g1", "gemini")]) as (
        router,
        sim,
    ):
        async with router.lease(GEMINI, tokens=300) as lease:
            client = lease.async_client()
            response = await client.models.generate_content(model=lease.model, contents="Hi")
            lease.record(response)
        [record] = await records_of(router)
    assert response.text
    assert [r.key_id for r in sim.requests()] == ["g1"]
    meta = response.usage_metadata
    assert meta is not None and meta.prompt_token_count
    assert (record.key_id, record.provider, record.success) == ("g1", "gemini", True)
    assert (record.prompt_tokens, record.completion_tokens) == (
        meta.prompt_token_count,
        meta.candidates_token_count,
    )


async def test_execute_with_retry_rotates_after_a_429_and_cools_the_key(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [first("a", OPENAI), second("b", OPENAI)]
    keys[0].faults = {"spurious_429_rate": 1.0}

    async def call(lease: Lease) -> Any:
        client = lease.async_client()
        return await client.chat.completions.create(model=lease.model, messages=HELLO)

    async with sim_router(settings(request), tmp_path, keys) as (router, sim):
        response = await router.execute_with_retry(call, model=OPENAI, tokens=200)
        a = await router.key_manager.get_key_status("a")
        records = await records_of(router)
    assert response.choices[0].message.content
    assert [r.key_id for r in sim.requests()] == ["a", "b"]
    assert a["in_cooldown"] and a["rate_limited"] == 1, a
    by_key = {r.key_id: r for r in records}
    assert len(records) == 2
    assert (by_key["a"].success, by_key["a"].error_type) == (False, "rate_limited")
    assert by_key["b"].success and by_key["b"].completion_tokens == response.usage.completion_tokens


async def test_execute_with_retry_rotates_after_a_401_and_disables_the_key(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [first("revoked", CLAUDE), second("good", CLAUDE)]
    keys[0].revoked = True

    async def call(lease: Lease) -> Any:
        client = lease.async_client()
        assert isinstance(client, anthropic.AsyncAnthropic)
        return await client.messages.create(model=lease.model, max_tokens=32, messages=HELLO)

    async with sim_router(settings(request), tmp_path, keys) as (router, sim):
        with log_events(request.getfixturevalue("caplog")) as events:
            message = await router.execute_with_retry(call, model=CLAUDE, tokens=200)
        revoked = await router.key_manager.get_key_status("revoked")
    assert message.content
    assert [r.key_id for r in sim.requests()] == ["revoked", "good"]
    assert revoked["state"] == "disabled", revoked
    logged = json.dumps(events, default=str)
    assert keys[0].secret not in logged and keys[1].secret not in logged


async def test_execute_with_retry_backs_off_after_a_5xx_and_takes_the_next_key(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [first("sick", GEMINI), second("well", GEMINI)]
    keys[0].faults = {"error_rate": 1.0, "error_status": 500}

    async def call(lease: Lease) -> Any:
        return await lease.async_client().models.generate_content(model=lease.model, contents="Hi")

    async with sim_router(settings(request), tmp_path, keys) as (router, sim):
        response = await router.execute_with_retry(call, model=GEMINI, tokens=200)
        records = await records_of(router)
    assert response.text
    assert [r.key_id for r in sim.requests()] == ["sick", "well"]
    errors = {r.key_id: r.error_type for r in records}
    assert errors == {"sick": "server_error", "well": None}


async def test_a_failed_lease_raises_the_sdk_exception_classified_and_recorded(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    key = PoolKey("g1", "gemini", faults={"spurious_429_rate": 1.0})
    async with sim_router(settings(request), tmp_path, [key]) as (router, _sim):
        with pytest.raises(genai.errors.ClientError) as raised:
            async with router.lease(GEMINI, tokens=100) as lease:
                await lease.async_client().models.generate_content(model=lease.model, contents="x")
        status = await router.key_manager.get_key_status("g1")
        with pytest.raises(AllKeysExhaustedError) as exhausted:
            async with router.lease(GEMINI, tokens=100):
                pass
        [record] = await records_of(router)
    assert raised.value.code == 429
    assert isinstance(lease.error, RateLimitedError) and lease.error.retry_after
    assert status["in_cooldown"] and status["rate_limited"] == 1
    assert exhausted.value.retry_after is not None and exhausted.value.retry_after > 0
    assert (record.success, record.error_type, record.key_id) == (False, "rate_limited", "g1")


async def test_execute_with_retry_ends_with_all_keys_exhausted_after_every_key_429s(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [PoolKey(k, faults={"spurious_429_rate": 1.0}) for k in ("a", "b")]

    async def call(lease: Lease) -> Any:
        return await lease.async_client().chat.completions.create(model=lease.model, messages=HELLO)

    async with sim_router(settings(request), tmp_path, keys) as (router, sim):
        with pytest.raises(AllKeysExhaustedError) as raised:
            await router.execute_with_retry(call, model=OPENAI, tokens=100)
    assert sorted(r.key_id for r in sim.requests()) == ["a", "b"]
    assert raised.value.retry_after is not None and raised.value.retry_after > 0
    assert isinstance(raised.value.__cause__, openai.RateLimitError)


async def test_max_attempts_bounds_the_rotation_and_the_last_sdk_error_is_raised(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [PoolKey(k, faults={"spurious_429_rate": 1.0}) for k in ("a", "b", "c")]

    async def call(lease: Lease) -> Any:
        return await lease.async_client().chat.completions.create(model=lease.model, messages=HELLO)

    async with sim_router(settings(request), tmp_path, keys) as (router, sim):
        with pytest.raises(openai.RateLimitError):
            await router.execute_with_retry(call, model=OPENAI, tokens=100, max_retries=2)
    assert len(sim.requests()) == 2


async def test_the_callers_own_exception_is_not_retried_and_leaves_the_key_healthy(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    calls: list[str] = []

    async def call(lease: Lease) -> Any:
        calls.append(lease.key_id)
        raise ValueError("a bug in the caller's code")

    async with sim_router(settings(request), tmp_path, [PoolKey("a"), PoolKey("b")]) as (
        router,
        _sim,
    ):
        with pytest.raises(ValueError, match="caller's code"):
            await router.execute_with_retry(call, model=OPENAI, tokens=100)
        status = await router.key_manager.get_key_status(calls[0])
        [record] = await records_of(router)
    assert len(calls) == 1
    assert (status["in_cooldown"], status["failures"], status["rate_limited"]) == (False, 0, 0)
    assert (record.success, record.error_type) == (False, "internal_error")


@pytest.mark.parametrize(
    ("kind", "priced_in", "priced_out"), [("other", 0, 321), ("embedding", 321, 0)]
)
async def test_an_unreported_lease_is_settled_at_its_estimate_and_worst_case_cost(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, priced_in: int, priced_out: int
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("a")]) as (router, _sim):
        async with router.lease(OPENAI, tokens=321, kind=kind):
            pass
        status = await router.key_manager.get_key_status("a")
        [record] = await records_of(router)
    assert status["tpm_usage"]["used"] == 321
    assert (record.success, record.usage_reported, record.prompt_tokens) == (True, False, 321)
    # the worst case: an embedding's tokens are all input, others all output
    assert record.cost == pytest.approx(cost_of(OPENAI, priced_in, priced_out))


async def test_several_calls_on_one_lease_add_up_in_its_one_record(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("a")]) as (router, _sim):
        async with router.lease(OPENAI, tokens=500) as lease:
            lease.record(prompt_tokens=10, completion_tokens=5)
            lease.record({"prompt_tokens": 7, "completion_tokens": 3})
        [record] = await records_of(router)
    assert (record.prompt_tokens, record.completion_tokens) == (17, 8)


async def test_bad_arguments_name_the_parameter(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("a")]) as (router, _sim):
        with pytest.raises(ClientRequestError) as kind:
            async with router.lease(OPENAI, kind="images"):
                pass
        with pytest.raises(ClientRequestError) as tokens:
            async with router.lease(OPENAI, tokens=-1):
                pass
        with pytest.raises(ModelNotAvailableError):
            async with router.lease("no-such-model"):
                pass
        with pytest.raises(ClientRequestError) as usage:
            async with router.lease(OPENAI) as lease:
                lease.record("twelve")
        with pytest.raises(ClientRequestError) as attempts:
            await router.execute_with_retry(lambda lease: None, model=OPENAI, max_attempts=-2)
    assert (kind.value.param, tokens.value.param) == ("kind", "tokens")
    assert (usage.value.param, attempts.value.param) == ("usage", "max_attempts")


async def test_the_secret_is_in_no_repr_str_or_log(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    key = PoolKey("a", revoked=True)
    async with sim_router(settings(request), tmp_path, [key]) as (router, _sim):
        caplog = request.getfixturevalue("caplog")
        with log_events(caplog) as events, pytest.raises(openai.AuthenticationError):
            async with router.lease(OPENAI, tokens=100) as lease:
                shown = [repr(lease), str(lease), f"{lease}"]
                await lease.async_client().chat.completions.create(
                    model=lease.model, messages=HELLO
                )
        status = await router.key_manager.get_key_status("a")
    assert lease.secret == key.secret
    assert isinstance(lease.error, ProviderAuthError)
    texts = [*shown, str(lease.error), json.dumps(lease.error.to_dict()), json.dumps(status)]
    texts.append(json.dumps(events, default=str))
    assert "a" in shown[0] and lease.masked_key in shown[0]
    for text in texts:
        assert key.secret not in text


async def test_a_refused_connection_rotates_at_once_and_gives_the_reservation_back(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    keys = [first("down", OPENAI), second("up", OPENAI)]
    keys[0].base_url = closed
    leases: list[Lease] = []

    async def call(lease: Lease) -> Any:
        leases.append(lease)
        return await lease.async_client().chat.completions.create(model=lease.model, messages=HELLO)

    async with sim_router(settings(request), tmp_path, keys) as (router, sim):
        response = await router.execute_with_retry(call, model=OPENAI, tokens=200)
        down = await router.key_manager.get_key_status("down")
    assert response.choices[0].message.content
    assert [lease.key_id for lease in leases] == ["down", "up"]
    error = leases[0].error
    assert isinstance(error, ProviderConnectionError) and not error.reached_provider
    assert down["tpm_usage"]["used"] == 0 and down["in_cooldown"], down
    assert [r.key_id for r in sim.requests()] == ["up"]


async def test_a_lease_longer_than_the_reservation_ttl_settles_with_its_recorded_usage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with sim_router(settings(request), tmp_path, [PoolKey("a")]) as (router, _sim):
        router.key_manager.engine.reservation_ttl = 1  # the setting's floor is 10 s
        async with router.lease(OPENAI, tokens=900) as lease:
            await asyncio.sleep(2.5)  # outlives the TTL twice: kept alive meanwhile
            lease.record(prompt_tokens=40, completion_tokens=2)
        status = await router.key_manager.get_key_status("a")
    assert status["tpm_usage"]["used"] == 42, status  # expired, it would stay charged 900


async def test_an_open_lease_holds_its_worst_case_cost_on_the_budgets(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    worst = default_table().worst_case_nanos(OPENAI, 0, 1000)
    assert worst is not None
    budgets = json.dumps({"team:blue": {"limit_usd": 1.5 * worst / NANOS, "period": "month"}})
    config = settings(request, BUDGETS=budgets)
    async with sim_router(config, tmp_path, [PoolKey("a")]) as (router, _sim):
        async with router.lease(OPENAI, tokens=1000, team="blue") as lease:
            with pytest.raises(BudgetExceededError) as refused:
                async with router.lease(OPENAI, tokens=1000, team="blue"):
                    pass
            lease.record(prompt_tokens=10, completion_tokens=10)
        async with router.lease(OPENAI, tokens=1000, team="blue"):  # the real cost was settled
            pass
    assert (refused.value.scope, refused.value.name) == ("team", "blue")


async def test_a_cancelled_lease_keeps_its_charge_and_records_cancelled(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    opened = asyncio.Event()

    async def hold() -> None:
        async with router.lease(OPENAI, tokens=250):
            opened.set()
            await asyncio.Event().wait()  # until cancelled

    async with sim_router(settings(request), tmp_path, [PoolKey("a")]) as (router, _sim):
        task = asyncio.create_task(hold())
        await opened.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        status = await router.key_manager.get_key_status("a")
        [record] = await records_of(router)
    assert (record.success, record.error_type) == (False, "cancelled")
    assert (status["in_cooldown"], status["failures"]) == (False, 0)
    assert status["tpm_usage"]["used"] == 250  # it may have reached the provider
