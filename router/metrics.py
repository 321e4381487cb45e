"""Prometheus metrics of the request path (prometheus-client), named ``llm_router_*``.

:class:`RouterMetrics` counts what every answer of the router says (router/answers.py): requests
by outcome, tokens, latency, rotations, fallbacks and the 429s the pool avoided (``no_room``: a
model had no local room, so the call went to another key or model, or waited, instead of being
refused by the provider). :class:`PoolCollector` turns a snapshot of the pool (the key manager's
statuses, read from Redis, so every process reports the same) into per-key gauges: state, usage
against limits, and the counters of each key, including the 429s providers answered.

Cost (``cost_usd_total`` by provider and model, fed by :func:`observe_cost`) and soft budget
alerts (``budget_alerts_total`` by scope) are counted per process; :class:`BudgetCollector` turns
the budget book (keys/budgets.py, read from the store at scrape time) into ``budget_spent_usd`` and
``budget_remaining_usd`` gauges by scope and id, at most :data:`MAX_BUDGET_SERIES` budgets (the
global one, then those with the largest share of their limit used).

Label values are bounded: pass ``model_label`` (the gateway passes ``Gateway.model_label``) to map
a name clients chose to a configured name, the pattern that serves it, or ``other``
(``CapacityEngine.model_label``); per-key usage is labelled by the key's models and patterns. No
label holds a tag or a name a client chose, and none ever holds a secret: keys are named by their
configured id; the budget gauges name the budgets an operator set (a user, team or virtual key
id), at most MAX_BUDGET_SERIES of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from router.answers import Answer

if TYPE_CHECKING:
    from keys.budgets import BudgetStatus

PREFIX = "llm_router"
#: LLM calls take from milliseconds (a cached or simulated answer) to minutes (long generations).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
KEY_STATES = ("healthy", "cooldown", "circuit_open", "half_open", "disabled")
#: Budgets exported as gauges at most (the global one first, then the most used).
MAX_BUDGET_SERIES = 100


M = TypeVar("M", bound=MetricWrapperBase)


class Children(Generic[M]):
    """A labelled metric's children, each bound once per label tuple: ``children(*values)`` is a
    dict lookup where ``metric.labels(*values)`` validates, locks and formats on every call (a
    few microseconds, several times per request). The cache holds exactly the label tuples the
    metric has children for, so it is bounded by the metric's label cardinality (bounded values:
    see the module's docstring)."""

    __slots__ = ("_bound", "metric")

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self._bound: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._bound.get(values)
        if child is None:
            child = self._bound[values] = self.metric.labels(*values)
        return child

    def __len__(self) -> int:
        return len(self._bound)


class RouterMetrics:
    """Counters and histograms fed by router answers, in one registry."""

    # size: declarations only, one statement per metric (a table would lose each metric's type)
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import REGISTRY

        reg = registry if registry is not None else REGISTRY
        self.registry = reg
        self.requests = Counter(
            f"{PREFIX}_requests",
            "Router answers by served model, provider and outcome (success or the error type)",
            ["model", "provider", "outcome"],
            registry=reg,
        )
        self.tokens = Counter(
            f"{PREFIX}_tokens",
            "Tokens the providers reported, by kind (prompt, completion, cached)",
            ["model", "provider", "kind"],
            registry=reg,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_latency_seconds",
            "Time from the router receiving a request to its answer (all attempts and waits)",
            ["model", "provider"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.attempts = Counter(
            f"{PREFIX}_attempts",
            "Provider calls made (one request may make several)",
            ["model"],
            registry=reg,
        )
        self.rotations = Counter(
            f"{PREFIX}_rotations",
            "Requests that moved to another key or model after a failure",
            ["model"],
            registry=reg,
        )
        self.fallbacks = Counter(
            f"{PREFIX}_fallbacks",
            "Answers served by a model other than the one requested",
            ["requested_model", "model"],
            registry=reg,
        )
        self.avoided = Counter(
            f"{PREFIX}_rate_limits_avoided",
            "Times a model had no room locally, so no call was sent that the provider would "
            "have refused with a 429",
            ["model"],
            registry=reg,
        )
        self.degraded = Counter(
            f"{PREFIX}_degraded_calls",
            "Answers served in degraded mode (the shared store unreachable: local limits divided "
            "by ROUTER_PROCESSES), by outcome",
            ["outcome"],
            registry=reg,
        )
        self.waited = Counter(
            f"{PREFIX}_room_wait_seconds",
            "Seconds requests waited for room in the pool",
            ["model"],
            registry=reg,
        )
        self._usage_metrics(reg)
        self._bind()

    def _bind(self) -> None:
        """The children of the metrics every answer updates, bound once per label tuple."""
        self.requests_of = Children(self.requests)
        self.tokens_of = Children(self.tokens)
        self.latency_of = Children(self.latency)
        self.attempts_of = Children(self.attempts)
        self.cost_of = Children(self.cost)

    def _usage_metrics(self, reg: CollectorRegistry) -> None:
        self.cost = Counter(
            f"{PREFIX}_cost_usd",
            "What calls cost (USD, at the price table's prices; calls of unknown price count "
            "nothing), by provider and served model",
            ["provider", "model"],
            registry=reg,
        )
        self.budget_alerts = Counter(
            f"{PREFIX}_budget_alerts",
            "Soft budget alerts (a budget's spend passed its alert share), by budget scope",
            ["scope"],
            registry=reg,
        )

    def observe_cost(
        self,
        provider: str | None,
        model: str | None,
        usd: float | None,
        model_label: Callable[[str], str] | None = None,
    ) -> None:
        """Count one call's cost (None: unknown price, not counted)."""
        if usd is None or not usd > 0:
            return
        label = model_label or _same
        self.cost_of(provider or "none", label(model or "")).inc(usd)

    def observe_budget_alert(self, scope: str) -> None:
        """Count one soft alert of a budget of ``scope`` (global, user, team, vkey)."""
        self.budget_alerts.labels(scope if scope in BUDGET_SCOPES else "other").inc()

    def record(self, answer: Answer, model_label: Callable[[str], str] | None = None) -> None:
        """Count one answer (success or failure)."""
        label = model_label or _same
        model = label(answer["model"])
        provider = answer["provider"] or "none"
        outcome = "success" if answer["success"] else answer["error_type"] or "error"
        self.requests_of(model, provider, outcome).inc()
        self.latency_of(model, provider).observe(answer["latency_ms"] / 1000)
        self.observe_cost(answer["provider"], answer["model"], answer.get("cost"), model_label)
        if answer["success"]:
            tokens = answer["tokens"]
            for kind, count in (
                ("prompt", tokens["prompt"]),
                ("completion", tokens["completion"]),
                ("cached", tokens["cached"]),
            ):
                if count:
                    self.tokens_of(model, provider, kind).inc(count)
        if answer["attempts"]:
            self.attempts_of(model).inc(answer["attempts"])
        if answer["rotations"]:
            self.rotations.labels(model).inc(answer["rotations"])
        if answer["success"] and answer["fallback_used"]:
            self.fallbacks.labels(label(answer["requested_model"]), model).inc()
        if answer["no_room"]:
            self.avoided.labels(model).inc(answer["no_room"])
        if answer["degraded"]:
            self.degraded.labels(outcome).inc()
        if answer["waited_ms"]:
            self.waited.labels(model).inc(answer["waited_ms"] / 1000)


def _same(model: str) -> str:
    return model or "none"


BUDGET_SCOPES = ("global", "user", "team", "vkey")
_default: RouterMetrics | None = None


def default_metrics() -> RouterMetrics:
    """The process's metrics in prometheus-client's default registry (created on first use)."""
    global _default
    if _default is None:
        _default = RouterMetrics()
    return _default


def observe_cost(
    provider: str | None,
    model: str | None,
    usd: float | None,
    model_label: Callable[[str], str] | None = None,
) -> None:
    """:meth:`RouterMetrics.observe_cost` on the process's default metrics."""
    default_metrics().observe_cost(provider, model, usd, model_label)


class BudgetCollector(Collector):
    """Budget gauges from :meth:`keys.budgets.BudgetBook.list`, set before each scrape with
    :meth:`update`: at most ``limit`` budgets (the global one, then the most used)."""

    def __init__(self, limit: int = MAX_BUDGET_SERIES) -> None:
        self.limit = limit
        self.statuses: list[BudgetStatus] = []

    def update(self, statuses: Iterable[BudgetStatus]) -> None:
        ranked = sorted(statuses, key=lambda s: (s.scope != "global", -s.used_share))
        self.statuses = ranked[: self.limit]

    def collect(self) -> Iterable[Metric]:
        families = {
            name: GaugeMetricFamily(f"{PREFIX}_budget_{name}", help_text, labels=["scope", "id"])
            for name, help_text in (
                ("spent_usd", "USD a budget's settled calls cost in its current period"),
                (
                    "remaining_usd",
                    "USD a budget has left in its current period (reservations "
                    "of calls in flight count as used)",
                ),
                ("limit_usd", "A budget's limit per period (USD)"),
            )
        }
        for status in self.statuses:
            labels = [status.scope, status.id]
            families["spent_usd"].add_metric(labels, status.spent_usd)
            families["remaining_usd"].add_metric(labels, status.remaining_usd)
            families["limit_usd"].add_metric(labels, status.limit_usd)
        yield from families.values()


class PoolCollector(Collector):
    """Per-key gauges from the key manager's statuses (``get_all_key_statuses()``), set before
    each scrape with :meth:`update`; every process reads the same shared state."""

    def __init__(self, statuses: Iterable[dict[str, Any]] = ()) -> None:
        self.statuses = list(statuses)

    def update(self, statuses: Iterable[dict[str, Any]]) -> None:
        self.statuses = list(statuses)

    def collect(self) -> Iterable[Metric]:
        state = GaugeMetricFamily(
            f"{PREFIX}_key_state",
            "1 for the key's current state (healthy, cooldown, circuit_open, half_open, disabled)",
            labels=["key_id", "provider", "state"],
        )
        counters = {
            name: CounterMetricFamily(f"{PREFIX}_key_{name}", help_text, labels=["key_id"])
            for name, help_text in (
                ("requests", "Calls made with the key (all processes)"),
                ("successes", "Calls the key answered successfully"),
                ("failures", "Calls that failed on the key (5xx, timeouts, auth)"),
                ("rate_limited", "429s the provider answered for the key"),
                ("tokens", "Tokens charged to the key"),
            )
        }
        usage = {
            name: GaugeMetricFamily(f"{PREFIX}_key_{name}", help_text, labels=["key_id", "model"])
            for name, help_text in (
                ("rpm_used", "Requests in the last minute (sliding)"),
                ("rpm_limit", "Requests-per-minute limit"),
                ("tpm_used", "Tokens in the last minute (sliding)"),
                ("tpm_limit", "Tokens-per-minute limit"),
                ("rpd_used", "Requests today (the provider's calendar)"),
                ("rpd_limit", "Requests-per-day limit"),
            )
        }
        for status in self.statuses:
            key_id = str(status["key_id"])
            for name in KEY_STATES:
                state.add_metric([key_id, status["provider"], name], float(status["state"] == name))
            for name, family in counters.items():
                family.add_metric([key_id], float(status.get(name) or 0))
            for model, use in (status.get("usage_by_model") or {}).items():
                _usage_samples(usage, key_id, model, use)
        yield state
        yield from counters.values()
        yield from usage.values()


def _usage_samples(
    families: dict[str, GaugeMetricFamily], key_id: str, model: str, use: dict[str, Any]
) -> None:
    pairs = (
        ("rpm", use.get("rpm") or {}, "count"),
        ("tpm", use.get("tpm") or {}, "used"),
        ("rpd", use.get("rpd") or {}, "count"),
    )
    for name, entry, used_field in pairs:
        families[f"{name}_used"].add_metric([key_id, model], float(entry.get(used_field) or 0))
        if entry.get("limit"):
            families[f"{name}_limit"].add_metric([key_id, model], float(entry["limit"]))
