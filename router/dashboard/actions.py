"""The Keys page's actions: cooldown, clear cooldown (which also resets an open breaker),
disable and enable. Each needs an admin session and its CSRF token (router/dashboard/session.py),
calls the KeyManager as the admin API does (so every process sees the change at once) and answers
``{"success": true, "data": <the key's row>}`` or an error in the gateway's shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kernel.errors import ConfigError, KeyNotFoundError
from kernel.log import get_logger
from keys.manager import KeyManager
from router.dashboard import data
from router.dashboard.session import Session, action
from router.gateway.admin import _object_body, cooldown_args, ok
from router.gateway.errors import bad_request, not_found
from router.gateway.openai_api import require_ready
from router.gateway.state import GATEWAY

log = get_logger("router.dashboard")
Act = Callable[[KeyManager, str, dict[str, Any]], Awaitable[Any]]


async def _cooldown(manager: KeyManager, key_id: str, body: dict[str, Any]) -> None:
    seconds, reason = cooldown_args(body)
    await manager.mark_key_unhealthy(key_id, seconds, reason)


async def _clear(manager: KeyManager, key_id: str, body: dict[str, Any]) -> None:
    await manager.clear_cooldown(key_id)


async def _disable(manager: KeyManager, key_id: str, body: dict[str, Any]) -> None:
    await manager.deactivate_key(key_id)


async def _enable(manager: KeyManager, key_id: str, body: dict[str, Any]) -> None:
    await manager.activate_key(key_id)


ACTIONS: dict[str, Act] = {
    "cooldown": _cooldown,
    "clear-cooldown": _clear,
    "disable": _disable,
    "enable": _enable,
}


def _handler(name: str, act: Act) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @action
    async def handler(request: web.Request, session: Session) -> web.StreamResponse:
        gateway = request.app[GATEWAY]
        require_ready(gateway)
        body = await _object_body(request) if request.can_read_body else {}
        key_id = request.match_info["key_id"]
        manager = gateway.router.key_manager
        try:
            await act(manager, key_id, body)
            status = await manager.get_key_status(key_id)
        except KeyNotFoundError as exc:
            raise not_found(str(exc), code="key_not_found", param="key_id") from None
        except ConfigError as exc:
            raise bad_request(str(exc), param=exc.field) from None
        log.info("dashboard action", action=name, key_id=key_id, state=status["state"])
        return ok(data.key_row(status))

    return handler


def add_routes(app: web.Application) -> None:
    for name, act in ACTIONS.items():
        app.router.add_post(f"/ui/api/keys/{{key_id}}/{name}", _handler(name, act))
