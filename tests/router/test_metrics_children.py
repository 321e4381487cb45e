"""Metric children bound once per label tuple: the same counts as ``labels()``, and no more
children than the metric's label cardinality."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from kernel.errors import ServerError
from router.answers import AttemptRecord, CallSummary, failure_answer, success_answer
from router.metrics import Children, RouterMetrics
from router.providers import ChatResult, Usage

MODELS = ("gpt-4o-mini", "claude-haiku-4-5", "gemini-2.0-flash")
PROVIDERS = ("openai", "anthropic", "gemini")


def answer(model: str, provider: str, ok: bool) -> dict:  # type: ignore[type-arg]
    summary = CallSummary(requested_model=model, model=model, provider=provider, key_id="k1")
    summary.attempts.append(AttemptRecord(model, "k1", provider, "success" if ok else "transient"))
    if not ok:
        return dict(failure_answer(ServerError("boom", provider=provider), summary))
    result = ChatResult(
        content="hi", finish_reason="stop", usage=Usage(3, 4), model=model, provider=provider
    )
    return dict(success_answer(result, summary))


def sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@given(
    st.lists(
        st.tuples(st.sampled_from(MODELS), st.sampled_from(PROVIDERS), st.booleans()), max_size=60
    )
)
def test_record_counts_like_labels_and_binds_each_label_tuple_once(
    calls: list[tuple[str, str, bool]],
) -> None:
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    for model, provider, ok in calls:
        metrics.record(answer(model, provider, ok))  # type: ignore[arg-type]
    outcomes = {(m, p, "success" if ok else "server_error") for m, p, ok in calls}
    assert len(metrics.requests_of) == len(outcomes)
    assert len(metrics.latency_of) == len({(m, p) for m, p, _ in calls})
    assert len(metrics.attempts_of) == len({m for m, _, _ in calls})
    for model, provider, outcome in itertools.product(
        MODELS, PROVIDERS, ("success", "server_error")
    ):
        expected = sum(
            1
            for m, p, ok in calls
            if (m, p, "success" if ok else "server_error") == (model, provider, outcome)
        )
        labels = {"model": model, "provider": provider, "outcome": outcome}
        assert sample(registry, "llm_router_requests_total", labels) == expected


def test_a_child_is_bound_once_and_is_the_metrics_own() -> None:
    registry = CollectorRegistry()
    counter = Counter("c", "test", ["a", "b"], registry=registry)
    children = Children(counter)
    first = children("x", "y")
    for _ in range(100):
        children("x", "y").inc()
    assert children("x", "y") is first is counter.labels("x", "y")
    assert len(children) == 1
    assert registry.get_sample_value("c_total", {"a": "x", "b": "y"}) == 100
