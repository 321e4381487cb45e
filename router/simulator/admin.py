"""Administration routes of the simulator (``/_sim/...``), for tests, demos and benchmarks.

GET  /_sim/health                       {"ok": true}
GET  /_sim/stats                        per key and model: admitted, 429s, faults, window maxima
GET  /_sim/requests?key_id=&model=&limit=   the bounded log of received requests (newest last)
POST /_sim/keys                         add or replace a key (a SimKey as JSON)
POST /_sim/keys/{key_id}/revoke         the key now gets 401
POST /_sim/keys/{key_id}/restore        ... and is accepted again
PUT  /_sim/faults                       replace the global faults (a FaultConfig as JSON)
PUT  /_sim/keys/{key_id}/faults         replace one key's fault overrides
POST /_sim/reset?limits=true            clear stats and the request log (and the limit state)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from router.simulator.config import FaultConfig, SimKey

if TYPE_CHECKING:
    from router.simulator.engine import Engine


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error": "body is not JSON"}', content_type="application/json"
        ) from None


class Admin:
    """The /_sim handlers over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.engine.stats.snapshot())

    async def requests(self, request: web.Request) -> web.Response:
        records = self.engine.requests(request.query.get("key_id"), request.query.get("model"))
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return _bad("limit: must be an integer")
        return web.json_response([r.as_dict() for r in records[-limit:]])

    async def add_key(self, request: web.Request) -> web.Response:
        try:
            key = SimKey.model_validate(await _json(request))
        except ValidationError as exc:
            return _bad(_validation_message(exc))
        self.engine.add_key(key)
        return web.json_response({"key_id": key.key_id}, status=201)

    async def revoke(self, request: web.Request) -> web.Response:
        return self._set_revoked(request.match_info["key_id"], True)

    async def restore(self, request: web.Request) -> web.Response:
        return self._set_revoked(request.match_info["key_id"], False)

    def _set_revoked(self, key_id: str, revoked: bool) -> web.Response:
        if not self.engine.set_revoked(key_id, revoked):
            return _bad(f"unknown key {key_id!r}", 404)
        return web.json_response({"key_id": key_id, "revoked": revoked})

    async def global_faults(self, request: web.Request) -> web.Response:
        try:
            faults = FaultConfig.model_validate(await _json(request))
        except ValidationError as exc:
            return _bad(_validation_message(exc))
        self.engine.set_faults(faults)
        return web.json_response(faults.model_dump())

    async def key_faults(self, request: web.Request) -> web.Response:
        key_id = request.match_info["key_id"]
        try:
            found = self.engine.set_faults(await _json(request), key_id)
        except ValidationError as exc:
            return _bad(_validation_message(exc))
        if not found:
            return _bad(f"unknown key {key_id!r}", 404)
        return web.json_response({"key_id": key_id})

    async def reset(self, request: web.Request) -> web.Response:
        limits = request.query.get("limits", "").lower() in ("1", "true", "yes")
        self.engine.reset_stats(limits=limits)
        return web.json_response({"ok": True})


def add_admin_routes(app: web.Application, engine: Engine) -> None:
    admin = Admin(engine)
    app.router.add_get("/_sim/health", admin.health)
    app.router.add_get("/_sim/stats", admin.stats)
    app.router.add_get("/_sim/requests", admin.requests)
    app.router.add_post("/_sim/keys", admin.add_key)
    app.router.add_post("/_sim/keys/{key_id}/revoke", admin.revoke)
    app.router.add_post("/_sim/keys/{key_id}/restore", admin.restore)
    app.router.add_put("/_sim/faults", admin.global_faults)
    app.router.add_put("/_sim/keys/{key_id}/faults", admin.key_faults)
    app.router.add_post("/_sim/reset", admin.reset)
