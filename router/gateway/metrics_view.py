"""``GET /metrics``: the router's metrics, the gateway's HTTP metrics and per-key gauges.

With several workers (``serve --workers N``) each process counts in prometheus-client's
multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``, set by ``serve``), and a scrape, whichever
worker answers it, adds them up. Per-key gauges are read from the store at scrape time, so they
are the same from every worker. With ``METRICS_TOKEN`` set, a scrape needs it as a bearer token.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kernel.errors import StoreError
from kernel.log import get_logger
from router.gateway.auth import require_metrics_token
from router.metrics import (
    PREFIX,
    BudgetCollector,
    Children,
    PoolCollector,
    RouterMetrics,
    default_metrics,
)

if TYPE_CHECKING:
    from router.gateway.state import Gateway

log = get_logger("router.gateway")
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    """The router's answer metrics plus the gateway's own, in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import REGISTRY

        reg = registry if registry is not None else REGISTRY
        self.registry = reg
        self.router: RouterMetrics = default_metrics() if registry is None else RouterMetrics(reg)
        self.http = Counter(
            f"{PREFIX}_gateway_http_requests",
            "HTTP requests answered by the gateway, by route, method and status",
            ["route", "method", "status"],
            registry=reg,
        )
        self.http_latency = Histogram(
            f"{PREFIX}_gateway_http_request_duration_seconds",
            "Time to answer an HTTP request (a stream: until its last event)",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=reg,
        )
        self.limited = Counter(
            f"{PREFIX}_gateway_limited",
            "Requests refused by the gateway's own limits (user, global, key_rpm, key_tpm)",
            ["limit"],
            registry=reg,
        )
        self.inflight = Gauge(
            f"{PREFIX}_gateway_inflight_requests",
            "Requests being answered now (streams included)",
            multiprocess_mode="livesum",
            registry=reg,
        )
        self.http_of = Children(self.http)
        self.http_latency_of = Children(self.http_latency)


_default: GatewayMetrics | None = None


def default_gateway_metrics() -> GatewayMetrics:
    """The process's gateway metrics in the default registry (created on first use)."""
    global _default
    if _default is None:
        _default = GatewayMetrics()
    return _default


def exposition(
    registry: CollectorRegistry, pool: PoolCollector, budgets: BudgetCollector | None = None
) -> bytes:
    """The text format of every metric: this process's (or all workers'), the pool's and the
    budgets'."""
    per_key = CollectorRegistry(auto_describe=False)
    per_key.register(pool)
    if budgets is not None:
        per_key.register(budgets)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged) + generate_latest(per_key)
    return generate_latest(registry) + generate_latest(per_key)


async def metrics_handler(request: web.Request) -> web.Response:
    from router.gateway.state import GATEWAY

    gateway: Gateway = request.app[GATEWAY]
    require_metrics_token(request, gateway.settings)
    pool, budgets = PoolCollector(), BudgetCollector()
    if gateway.ready:
        pool.update(await gateway.router.key_manager.get_all_key_statuses())
        await _read_budgets(gateway, budgets)
    body = exposition(gateway.metrics.registry, pool, budgets)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _read_budgets(gateway: Gateway, budgets: BudgetCollector) -> None:
    """The budget gauges from the store (a scrape without them when the store fails)."""
    from keys.budgets import BudgetBook

    store = gateway.store
    try:
        budgets.update(await BudgetBook(store, store.keys).list())
    except StoreError as exc:
        log.warning("budget gauges skipped: the store failed", error=str(exc))
