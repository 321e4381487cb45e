"""``RequestRouter.embed`` against the provider simulator and real Redis: vectors, rotation after a
429 or a 401, a Gemini embedding model, capacity reserved on the batch's tokens, one usage record
per call with its cost, and bad input refused before any provider is asked."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import ClientRequestError
from kernel.prices import default_table
from kernel.tokens import count_tokens
from router.simulator.wire_embeddings import vector
from tests.conftest import settings_for
from tests.router.pool import PoolKey, sim_router
from tests.router.test_usage_log import records_of

SMALL = "text-embedding-3-small"
GEMINI = "gemini-embedding-001"


def settings(request: pytest.FixtureRequest, **overrides: Any) -> Any:
    overrides.setdefault("RESERVE_WAIT_SECONDS", 0)
    return settings_for("redis", request, **overrides)


def openai_key(key_id: str, **kwargs: Any) -> PoolKey:
    return PoolKey(key_id, models=[SMALL], **kwargs)


async def test_a_batch_gets_one_vector_per_text_in_order_and_one_record_with_its_cost(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    texts = ["the quick brown fox", "jumps over", "the lazy dog"]
    async with sim_router(settings(request), tmp_path, [openai_key("e1")]) as (router, sim):
        answer = await router.embed(texts, model=SMALL, user="ann", team="t1")
        records = await records_of(router)
        seen = sim.requests()
    assert answer["success"], answer
    assert answer["embeddings"] == [vector(SMALL, t) for t in texts]
    assert all(len(v) == 1536 for v in answer["embeddings"])
    prompt = sum(count_tokens(t, SMALL) for t in texts)
    assert answer["tokens"] == {"prompt": prompt, "total": prompt}
    cost = default_table().cost(SMALL, prompt, 0)
    assert cost is not None and answer["cost"] == pytest.approx(cost.usd)
    assert (answer["model"], answer["provider"], answer["key_id"]) == (SMALL, "openai", "e1")
    assert answer["key"] and answer["key"] != answer["key_id"]
    assert answer["attempts"] == 1 and answer["error"] is None and not answer["degraded"]
    assert len(seen) == 1 and seen[0].prompt_tokens == prompt  # one call for the batch
    assert len(records) == 1
    record = records[0]
    assert (record.model, record.key_id, record.user, record.team) == (SMALL, "e1", "ann", "t1")
    assert record.prompt_tokens == prompt and record.completion_tokens == 0
    assert record.cost == pytest.approx(cost.usd) and record.request_id == answer["request_id"]


async def test_dimensions_shorten_the_vectors_and_a_string_is_one_text(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with sim_router(settings(request), tmp_path, [openai_key("e1")]) as (router, _):
        answer = await router.embed("hello", model=SMALL, dimensions=256)
    assert answer["success"], answer
    assert answer["embeddings"] == [vector(SMALL, "hello", 256)]
    assert math.isclose(sum(v * v for v in answer["embeddings"][0]), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("fault", ["rate_limited", "revoked"])
async def test_a_key_answering_429_or_401_rotates_to_the_next_key_at_once(
    request: pytest.FixtureRequest, tmp_path: Path, fault: str
) -> None:
    bad = (
        openai_key("bad", faults={"spurious_429_rate": 1.0})
        if fault == "rate_limited"
        else openai_key("bad", revoked=True)
    )
    keys = [bad, openai_key("good")]
    async with sim_router(settings(request), tmp_path, keys) as (router, sim):
        answers = [await router.embed(["a text"], model=SMALL) for _ in range(3)]
        bad_calls = sim.requests(key_id="bad")
    assert all(a["success"] for a in answers), answers
    assert {a["key_id"] for a in answers} == {"good"}
    assert len(bad_calls) == 1  # cooled down (429) or disabled (401) after its first failure
    assert answers[0]["attempts"] in (1, 2)
    outcome = bad_calls[0].outcome
    assert outcome.startswith("fault:spurious_429" if fault == "rate_limited" else "denied")


async def test_a_gemini_embedding_model_counts_its_tokens_itself(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    texts = ["un texte", "another text"]
    key = PoolKey("g1", provider="gemini", models=[GEMINI])
    async with sim_router(settings(request), tmp_path, [key]) as (router, sim):
        answer = await router.embed(texts, model=GEMINI, dimensions=768)
        records = await records_of(router)
        seen = sim.requests()
    assert answer["success"], answer
    assert answer["embeddings"] == [vector(GEMINI, t, 768) for t in texts]
    prompt = sum(count_tokens(t, GEMINI) for t in texts)
    assert answer["tokens"]["prompt"] == prompt
    assert seen[0].prompt_tokens is not None and seen[0].prompt_tokens <= prompt
    assert len(records) == 1 and not records[0].usage_reported
    cost = default_table().cost(GEMINI, prompt, 0)
    assert cost is not None and records[0].cost == pytest.approx(cost.usd)


async def test_the_batch_reserves_its_tokens_so_a_full_minute_answers_without_a_provider_429(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    text = "word " * 100
    tokens = count_tokens(text, SMALL)
    key = openai_key("small", tpm=tokens * 3 + tokens // 2, rpm=100)
    async with sim_router(settings(request), tmp_path, [key]) as (router, sim):
        first = await router.embed([text, text, text], model=SMALL)
        second = await router.embed([text], model=SMALL)
        stats = sim.usage("small", SMALL)
    assert first["success"], first
    assert not second["success"]
    assert second["error_type"] == "rate_limited" and second["retry_after"] is not None
    assert second["attempts"] == 0
    assert stats["rate_limited"] == 0 and stats["admitted_requests"] == 1
    assert stats["prompt_tokens"] == tokens * 3


async def test_bad_input_is_refused_naming_the_parameter_and_still_recorded(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with sim_router(settings(request), tmp_path, [openai_key("e1")]) as (router, sim):
        empty = await router.embed([], model=SMALL)
        blank = await router.embed(["ok", ""], model=SMALL)
        dims = await router.embed("x", model=SMALL, dimensions=0)
        with pytest.raises(ClientRequestError) as raised:
            await router.embed(["ok", 3], model=SMALL, raise_on_error=True)  # type: ignore[list-item]
        chat = await router.embed("x", model="gpt-4o-mini")
        await router.flush()  # failures are recorded in the background
        records = await records_of(router)
        seen = sim.requests()
    assert empty["error_type"] == "invalid_request_error" and "'input'" in str(empty["error"])
    assert "'input[1]'" in str(blank["error"])
    assert "'dimensions'" in str(dims["error"])
    assert raised.value.param == "input"
    assert not chat["success"]
    assert seen == []
    assert len(records) == 5 and not any(r.success for r in records)


async def test_a_5xx_backs_off_to_the_next_key_and_a_full_model_falls_back_to_another(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [
        openai_key("broken", faults={"error_rate": 1.0}),
        openai_key("full", rpm=1),
        PoolKey("g1", provider="gemini", models=[GEMINI]),
    ]
    routing = {"fallbacks": {SMALL: [GEMINI]}}
    async with sim_router(settings(request), tmp_path, keys, routing=routing) as (router, sim):
        answers = [await router.embed("some text", model=SMALL) for _ in range(3)]
        broken = sim.requests(key_id="broken")
    assert all(a["success"] for a in answers), answers
    assert [a["key_id"] for a in answers].count("full") == 1  # its one request of the minute
    assert broken and all(r.outcome.startswith("fault:") for r in broken)
    fell_back = [a for a in answers if a["key_id"] == "g1"]
    assert fell_back and all(a["model"] == GEMINI and a["fallback_used"] for a in fell_back)
    assert [a["fallback_reason"] for a in answers] == [
        "fallback" if a in fell_back else None for a in answers
    ]
    assert all(a["requested_model"] == SMALL for a in answers)
    assert fell_back[0]["embeddings"] == [vector(GEMINI, "some text")]


async def test_a_chat_model_or_an_input_over_the_limit_is_refused_without_a_call(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    keys = [PoolKey("chat", models=["gpt-4o-mini"]), openai_key("e1")]
    async with sim_router(settings(request), tmp_path, keys) as (router, sim):
        chat = await router.embed("x", model="gpt-4o-mini")
        long = await router.embed(["ok", "word " * 9000], model=SMALL)
        seen = sim.requests()
    assert chat["error_type"] == "bad_request" and "not an embedding model" in str(chat["error"])
    assert long["error_type"] == "context_length_exceeded" and "input[1]" in str(long["error"])
    assert seen == []
