"""Operations routes: liveness, readiness and a pool summary (no secrets, no key ids).

``GET /health`` answers 200 while the process serves at all (liveness). ``GET /health/ready``
answers 200 only once the keys are loaded and the store and secret store answer, and 503 while
starting, while the store is unreachable and while draining for shutdown, so a load balancer
sends traffic only where it can be served. In degraded mode (``STORE_FAILURE_MODE=open``, Redis
unreachable: kernel/failover.py) it answers 200 with ``"status": "degraded"``: the worker serves
on local limits. ``GET /status`` summarises the pool by counts.

Both routes are unauthenticated: their checks of the store and the secret store, and the pool
summary, are reused for ``READINESS_CACHE_SECONDS`` (default 2 s; concurrent hits share one check),
so a flood of probes costs the store and the secret store one check per interval. Starting and
draining are reported at once, never from the cache.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

from aiohttp import web

from kernel import jsonio
from kernel.errors import StoreError
from router.gateway.state import GATEWAY, Gateway


def version() -> str:
    try:
        return metadata.version("llm-keypool-router")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


class CheckCache:
    """The last answer of an expensive check, reused for ``seconds``; concurrent callers wait for
    one check instead of each making their own."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._at = float("-inf")
        self._value: Any = None
        self._key: object = None
        self._lock = asyncio.Lock()

    async def get(self, compute: Callable[[], Awaitable[Any]], key: object = None) -> Any:
        """The cached answer, or a new one when it is older than ``seconds`` or was computed
        under another ``key`` (a state change such as entering or leaving degraded mode)."""
        if self.seconds <= 0:
            return await compute()
        async with self._lock:
            if self._clock() - self._at >= self.seconds or key != self._key:
                self._value = await compute()
                self._at, self._key = self._clock(), key
            return self._value


CHECKS = web.AppKey("ops_checks", dict[str, CheckCache])


def add_caches(app: web.Application, seconds: float) -> None:
    app[CHECKS] = {"ready": CheckCache(seconds), "pool": CheckCache(seconds)}


def _cache(request: web.Request, name: str) -> CheckCache:
    return request.app[CHECKS][name]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=jsonio.dumps(data), content_type="application/json")


async def health(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    return _json(
        {
            "status": "ok",
            "pid": os.getpid(),
            "uptime_seconds": round(time.time() - gateway.started_at, 3),
        }
    )


StoreChecks = tuple[dict[str, Any], str | None, dict[str, Any]]


async def readiness(
    gateway: Gateway, cache: CheckCache | None = None
) -> tuple[bool, dict[str, Any]]:
    """(ready, report): keys loaded, store answering, secret store usable, not draining; the
    checks of the two stores come from ``cache`` when it holds a recent one."""
    if gateway.draining:
        return False, {"ready": False, "reason": "draining: the gateway is shutting down"}
    if not gateway.ready:
        reason = gateway.startup_error or "starting: loading keys and the store"
        return False, {"ready": False, "reason": reason}
    if cache is None:
        checks: StoreChecks = await _check_stores(gateway)
    else:
        degraded = gateway.router.key_manager.store.degraded
        checks = await cache.get(lambda: _check_stores(gateway), key=degraded)
    store, store_error, secrets = checks
    if store_error is not None:
        return False, {"ready": False, "reason": store_error, "store": dict(store)}
    report: dict[str, Any] = {"ready": True, "store": dict(store)}
    if gateway.router.key_manager.store.degraded:  # serving on local limits: ready, saying so
        report["status"] = "degraded"
    keys = gateway.router.key_manager.keys.values()
    report["keys"] = {"total": len(keys), "active": sum(1 for k in keys if k.active)}
    if not report["keys"]["active"]:  # every request would fail: keep traffic away
        report.update(ready=False, reason="no active API keys configured")
        return False, report
    report["secret_store"] = {"backend": secrets.get("backend"), "ok": secrets.get("ok")}
    if not secrets.get("ok"):
        report.update(ready=False, reason=str(secrets.get("error")))
        return False, report
    return True, report


async def _check_stores(gateway: Gateway) -> StoreChecks:
    """(store description with its latency, the store's error or None, the secret store's check)."""
    manager = gateway.router.key_manager
    store = manager.store.describe()
    try:
        store["latency_ms"] = round(await manager.store.ping(), 3)
    except StoreError as exc:
        if not manager.store.degraded:  # degraded mode serves on local limits: still ready
            return manager.store.describe(), str(exc), {}
    return store, None, await manager.secrets.health_check()


async def ready(request: web.Request) -> web.Response:
    is_ready, report = await readiness(request.app[GATEWAY], _cache(request, "ready"))
    return _json(report, 200 if is_ready else 503)


async def status(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    is_ready, report = await readiness(gateway, _cache(request, "ready"))
    out: dict[str, Any] = {
        "status": report.get("status", "ok") if is_ready else "not_ready",
        "version": version(),
        "pid": os.getpid(),
        "uptime_seconds": round(time.time() - gateway.started_at, 3),
        "inflight": gateway.inflight,
        "ready": report,
        "limits": {
            "user_rpm": gateway.settings.USER_RPM_DEFAULT,
            "global_rpm": gateway.settings.GLOBAL_RPM_MAX,
        },
    }
    if gateway.ready:
        out.update(await _cache(request, "pool").get(lambda: _pool_summary(gateway)))
    return _json(out)


async def _pool_summary(gateway: Gateway) -> dict[str, Any]:
    statuses = await gateway.router.key_manager.get_all_key_statuses()
    return {
        "keys": {
            "total": len(statuses),
            "by_state": dict(Counter(s["state"] for s in statuses)),
            "by_provider": dict(Counter(s["provider"] for s in statuses)),
        },
        "models": [model for model, _ in gateway.catalog.listing()],
    }
