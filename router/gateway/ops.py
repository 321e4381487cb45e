"""Operations routes: liveness, readiness and a pool summary (no secrets, no key ids).

``GET /health`` answers 200 while the process serves at all (liveness). ``GET /health/ready``
answers 200 only once the keys are loaded and the store and secret store answer, and 503 while
starting, while the store is unreachable and while draining for shutdown, so a load balancer
sends traffic only where it can be served. In degraded mode (``STORE_FAILURE_MODE=open``, Redis
unreachable: router/failover.py) it answers 200 with ``"status": "degraded"``: the worker serves
on local limits. ``GET /status`` summarises the pool by counts.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from importlib import metadata
from typing import Any

from aiohttp import web

from router import jsonio
from router.errors import StoreError
from router.gateway.state import GATEWAY, Gateway


def version() -> str:
    try:
        return metadata.version("llm-keypool-router")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


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


async def readiness(gateway: Gateway) -> tuple[bool, dict[str, Any]]:
    """(ready, report): keys loaded, store answering, secret store usable, not draining."""
    if gateway.draining:
        return False, {"ready": False, "reason": "draining: the gateway is shutting down"}
    if not gateway.ready:
        reason = gateway.startup_error or "starting: loading keys and the store"
        return False, {"ready": False, "reason": reason}
    manager = gateway.router.key_manager
    report: dict[str, Any] = {"ready": True, "store": manager.store.describe()}
    try:
        report["store"]["latency_ms"] = round(await manager.store.ping(), 3)
    except StoreError as exc:
        if not manager.store.degraded:
            return False, {"ready": False, "reason": str(exc), "store": manager.store.describe()}
    if manager.store.degraded:  # serving on local limits: ready, and saying so
        report["status"] = "degraded"
    keys = manager.keys.values()
    report["keys"] = {"total": len(keys), "active": sum(1 for k in keys if k.active)}
    if not report["keys"]["active"]:  # every request would fail: keep traffic away
        report.update(ready=False, reason="no active API keys configured")
        return False, report
    secrets = await manager.secrets.health_check()
    report["secret_store"] = {"backend": secrets.get("backend"), "ok": secrets.get("ok")}
    if not secrets.get("ok"):
        report.update(ready=False, reason=str(secrets.get("error")))
        return False, report
    return True, report


async def ready(request: web.Request) -> web.Response:
    is_ready, report = await readiness(request.app[GATEWAY])
    return _json(report, 200 if is_ready else 503)


async def status(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    is_ready, report = await readiness(gateway)
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
        statuses = await gateway.router.key_manager.get_all_key_statuses()
        out["keys"] = {
            "total": len(statuses),
            "by_state": dict(Counter(s["state"] for s in statuses)),
            "by_provider": dict(Counter(s["provider"] for s in statuses)),
        }
        out["models"] = [model for model, _ in gateway.catalog.listing()]
    return _json(out)
