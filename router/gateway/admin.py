"""The admin API: key statistics, live key management and virtual keys (master key only).

Every route is under ``/api/v1/admin`` and answers ``{"success": true, "data": ...}`` (the shape of
document 001's ``/api/v1/admin/openai/stats``); errors have OpenAI's error shape like every other
route. Keys are shown by id and masked form, never by secret; a key added here gets its secret
from the secret store (``API_KEY_<ID>`` with the env store), as keys.json keys do. A key's
``base_url`` and ``secret_ref`` may only take values the policy allows (admin_policy.py): the master
key cannot send a secret to a new host.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kernel import jsonio
from kernel.errors import ConfigError, GatewayError, KeyNotFoundError
from kernel.text import check_plain
from keys.config import parse_key_entry
from keys.manager import KeyManager
from keys.models import APIKey
from router.gateway.admin_policy import AdminPolicy
from router.gateway.auth import require_master
from router.gateway.errors import bad_request, not_found
from router.gateway.openai_api import read_json, require_ready
from router.gateway.state import GATEWAY, Gateway
from router.gateway.vkeys import VirtualKeySpec

PREFIX = "/api/v1/admin"
MAX_COOLDOWN_SECONDS = 30 * 86400
#: Fields of a key that PATCH may change (document 004's aliases included).
CHANGEABLE = (set(APIKey.model_fields) - {"key_id", "created_at", "updated_at"}) | {
    "rpm_limit",
    "tpm_limit",
    "rpd_limit",
    "priority_models",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ok(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=jsonio.dumps({"success": True, "data": data}),
        content_type="application/json",
    )


def admin(handler: Callable[[web.Request, Gateway], Awaitable[web.Response]]) -> Handler:
    """Master key first; the key manager's own errors become 400 (404 for an unknown key id)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        gateway = request.app[GATEWAY]
        require_master(request, gateway.settings)
        require_ready(gateway)
        try:
            return await handler(request, gateway)
        except KeyNotFoundError as exc:
            raise not_found(str(exc), code="key_not_found", param="key_id") from None
        except ConfigError as exc:
            raise bad_request(str(exc), param=exc.field) from None

    return wrapped


def _policy(gateway: Gateway) -> AdminPolicy:
    """Where keys may send their secrets (router/gateway/admin_policy.py)."""
    return AdminPolicy.build(gateway.settings, gateway.router.key_manager.config.keys)


def _persist(request: web.Request) -> bool:
    return request.query.get("persist", "").lower() in ("1", "true", "yes")


async def _object_body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", param="body")
    return body


# -- statistics and key status -------------------------------------------------------------------
@admin
async def openai_stats(request: web.Request, gateway: Gateway) -> web.Response:
    """Document 001's answer: totals, strategy and counters per masked key."""
    return ok(await gateway.router.key_manager.get_stats())


@admin
async def list_keys(request: web.Request, gateway: Gateway) -> web.Response:
    return ok(await gateway.router.key_manager.get_all_key_statuses())


@admin
async def get_key(request: web.Request, gateway: Gateway) -> web.Response:
    return ok(await gateway.router.key_manager.get_key_status(request.match_info["key_id"]))


# -- live key management ---------------------------------------------------------------------------
@admin
async def add_key(request: web.Request, gateway: Gateway) -> web.Response:
    entry = await _object_body(request)
    manager = gateway.router.key_manager
    key = parse_key_entry(entry, source="request body", index=0)
    # the parsed key: ``api_key: "VAR"`` is a secret_ref too (document 002's spelling)
    _policy(gateway).check({"base_url": key.base_url, "secret_ref": key.secret_ref})
    await manager.add_key(key, persist=_persist(request))
    return ok(await manager.get_key_status(key.key_id), status=201)


@admin
async def update_key(request: web.Request, gateway: Gateway) -> web.Response:
    changes = await _object_body(request)
    if "key_id" in changes:
        raise bad_request("A key's id cannot change: add a new key instead.", param="key_id")
    for name in changes:
        if name not in CHANGEABLE:
            raise bad_request(f"{name}: unknown or unchangeable field", param=name)
    key_id = request.match_info["key_id"]
    manager = gateway.router.key_manager
    current = manager.keys.get(key_id)
    if current is not None:  # a value the key already has is no change
        _policy(gateway).check({k: v for k, v in changes.items() if getattr(current, k, None) != v})
    await manager.update_key(key_id, persist=_persist(request), **changes)
    return ok(await manager.get_key_status(key_id))


@admin
async def remove_key(request: web.Request, gateway: Gateway) -> web.Response:
    key_id = request.match_info["key_id"]
    await gateway.router.key_manager.remove_key(key_id, persist=_persist(request))
    return ok({"key_id": key_id, "removed": True})


def _key_action(action: Callable[[KeyManager, str], Awaitable[Any]]) -> Handler:
    """A route doing ``action`` on the path's key, answering the key's status after it."""

    @admin
    async def handler(request: web.Request, gateway: Gateway) -> web.Response:
        key_id = request.match_info["key_id"]
        manager = gateway.router.key_manager
        await action(manager, key_id)
        return ok(await manager.get_key_status(key_id))

    return handler


activate_key = _key_action(KeyManager.activate_key)
deactivate_key = _key_action(KeyManager.deactivate_key)
clear_cooldown = _key_action(KeyManager.clear_cooldown)


def cooldown_args(body: dict[str, Any]) -> tuple[float | None, str]:
    """(seconds, reason) of a cooldown request's body; a 400 naming the field otherwise."""
    seconds = body.get("seconds")
    if seconds is not None and (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= MAX_COOLDOWN_SECONDS
    ):
        raise bad_request(
            f"expected a number of seconds from 0 to {MAX_COOLDOWN_SECONDS}", "seconds"
        )
    reason = body.get("reason", "manual")
    if not isinstance(reason, str) or len(reason) > 200:
        raise bad_request("expected a string of at most 200 characters", "reason")
    check_plain(reason, "reason")
    return seconds, reason


@admin
async def set_cooldown(request: web.Request, gateway: Gateway) -> web.Response:
    body = await _object_body(request) if request.can_read_body else {}
    seconds, reason = cooldown_args(body)
    key_id = request.match_info["key_id"]
    manager = gateway.router.key_manager
    await manager.mark_key_unhealthy(key_id, seconds, reason)
    return ok(await manager.get_key_status(key_id))


@admin
async def reload_keys(request: web.Request, gateway: Gateway) -> web.Response:
    total = await gateway.router.key_manager.reload_keys()
    return ok({"keys": total})


@admin
async def save_keys(request: web.Request, gateway: Gateway) -> web.Response:
    path = await gateway.router.key_manager.save_keys()
    return ok({"path": str(path)})


# -- virtual keys ----------------------------------------------------------------------------------
@admin
async def create_vkey(request: web.Request, gateway: Gateway) -> web.Response:
    spec = VirtualKeySpec.parse(await _object_body(request))
    key, secret = await gateway.vkeys.create(spec)
    return ok({**key.public(), "key": secret}, status=201)


@admin
async def list_vkeys(request: web.Request, gateway: Gateway) -> web.Response:
    return ok([key.public() for key in await gateway.vkeys.list()])


@admin
async def get_vkey(request: web.Request, gateway: Gateway) -> web.Response:
    key = await gateway.vkeys.get(request.match_info["vkey_id"])
    if key is None:
        raise _no_vkey(request)
    return ok(key.public())


@admin
async def revoke_vkey(request: web.Request, gateway: Gateway) -> web.Response:
    key = await gateway.vkeys.revoke(request.match_info["vkey_id"])
    if key is None:
        raise _no_vkey(request)
    return ok(key.public())


def _no_vkey(request: web.Request) -> GatewayError:
    vkey_id = request.match_info["vkey_id"]
    return not_found(f"No virtual key has the id '{vkey_id}'.", code="vkey_not_found", param="id")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/openai/stats", openai_stats)
    r.add_get(f"{PREFIX}/keys", list_keys)
    r.add_post(f"{PREFIX}/keys", add_key)
    r.add_get(f"{PREFIX}/keys/{{key_id}}", get_key)
    r.add_patch(f"{PREFIX}/keys/{{key_id}}", update_key)
    r.add_delete(f"{PREFIX}/keys/{{key_id}}", remove_key)
    r.add_post(f"{PREFIX}/keys/{{key_id}}/activate", activate_key)
    r.add_post(f"{PREFIX}/keys/{{key_id}}/deactivate", deactivate_key)
    r.add_post(f"{PREFIX}/keys/{{key_id}}/cooldown", set_cooldown)
    r.add_delete(f"{PREFIX}/keys/{{key_id}}/cooldown", clear_cooldown)
    r.add_post(f"{PREFIX}/reload", reload_keys)
    r.add_post(f"{PREFIX}/save", save_keys)
    r.add_get(f"{PREFIX}/vkeys", list_vkeys)
    r.add_post(f"{PREFIX}/vkeys", create_vkey)
    r.add_get(f"{PREFIX}/vkeys/{{vkey_id}}", get_vkey)
    r.add_delete(f"{PREFIX}/vkeys/{{vkey_id}}", revoke_vkey)
