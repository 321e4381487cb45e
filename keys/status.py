"""Status answers for operators, in the shapes of documents 001, 003 and 004.

``StatusView`` answers the KeyManager's status methods from one snapshot of the pool's keys (one
store round trip); the functions below shape it. Everything here is shaped from a snapshot (keys/engine.py ``snapshot``) and never holds a secret:
keys are named by id and by their masked form (``sk-proj-abc...xyz1``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kernel.errors import StoreError
from keys.models import APIKey
from keys.pool import KeyPool

#: Key states, from the operator's point of view.
HEALTHY, COOLDOWN, CIRCUIT_OPEN, HALF_OPEN, DISABLED = (
    "healthy",
    "cooldown",
    "circuit_open",
    "half_open",
    "disabled",
)


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def key_state(key: APIKey, snap: dict[str, Any]) -> tuple[str, str, float | None]:
    """(state, reason, until) of a key: its own health first, then provider blocks of its models."""
    now = snap["now"]
    health = snap["health"]
    if not key.active:
        return DISABLED, "inactive", None
    if health["state"] == "disabled":
        return DISABLED, health["reason"] or "disabled", None
    if health["state"] == "open" and health["until"] > now:
        return CIRCUIT_OPEN, health["reason"], health["until"]
    if health["state"] == "probing" and health["until"] > now:
        return HALF_OPEN, health["reason"], health["until"]
    if health["state"] == "cooldown" and health["until"] > now:
        return COOLDOWN, health["reason"] or "cooldown", health["until"]
    blocked = [u["blocked_until"] for u in snap["usage"].values() if u.get("blocked_until")]
    if blocked and len(blocked) == len(snap["usage"]):
        return COOLDOWN, "rate_limited", min(blocked)
    return HEALTHY, "", None


def key_status(key: APIKey, snap: dict[str, Any], masked: str) -> dict[str, Any]:
    """Document 004's ``get_key_status`` answer, with the operator's extras."""
    state, reason, until = key_state(key, snap)
    primary = snap["usage"].get(key.model_name) or next(iter(snap["usage"].values()), None) or {}
    stats = snap["stats"]
    return {
        "key_id": key.key_id,
        "masked_key": masked,
        "provider": key.provider,
        "model": key.model_name,
        "models": [b.model for b in key.bindings],
        "quota_group": key.group,
        "tags": dict(key.tags),
        "active": key.active,
        "state": state,
        "reason": reason,
        "until": iso(until),
        "in_cooldown": state != HEALTHY,
        "rpm_usage": primary.get("rpm", {"count": 0, "limit": key.rpm, "available": None}),
        "tpm_usage": primary.get("tpm", {"used": 0, "limit": key.tpm, "available": None}),
        "rpd_usage": primary.get("rpd", {"count": 0, "limit": key.rpd, "tokens": 0}),
        "usage_by_model": snap["usage"],
        "limits": primary.get("limits", {}),
        "requests": stats["requests"],
        "successes": stats["successes"],
        "failures": stats["failures"],
        "rate_limited": stats["rate_limited"],
        "tokens": stats["tokens"],
        "last_used": iso(stats["last_used"]),
        "last_error": stats["last_error"],
        "last_error_at": iso(stats["last_error_at"]),
        "provider_limits": stats["provider_limits"],
    }


def health_entry(key: APIKey, snap: dict[str, Any]) -> dict[str, Any]:
    """One key of document 003's ``get_health_status`` answer."""
    state, reason, until = key_state(key, snap)
    stats = snap["stats"]
    return {
        "model": key.model_name,
        "provider": key.provider,
        "active": key.active,
        "last_used": iso(stats["last_used"]),
        "success_count": stats["successes"],
        "error_count": stats["failures"] + stats["rate_limited"],
        "in_cooldown": state != HEALTHY,
        "state": state,
        "reason": reason,
        "until": iso(until),
    }


def stats_entry(key: APIKey, snap: dict[str, Any]) -> dict[str, Any]:
    """One key of document 001's ``/api/v1/admin/openai/stats`` answer."""
    state, _, _ = key_state(key, snap)
    stats = snap["stats"]
    return {
        "key_id": key.key_id,
        "requests": stats["requests"],
        "successes": stats["successes"],
        "failures": stats["failures"],
        "circuit_open": state in (CIRCUIT_OPEN, HALF_OPEN),
        "rate_limited": state == COOLDOWN,
        "disabled": state == DISABLED,
        "last_used": iso(stats["last_used"]),
    }


class StatusView:
    """The pool's status answers: per key, the whole pool, and the health check."""

    def __init__(self, pool: KeyPool) -> None:
        self.pool = pool

    async def snapshot(self, key_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        await self.pool.ready()
        ids = list(key_ids) if key_ids is not None else list(self.pool.keys)
        return await self.pool.engine.snapshot(ids)

    async def get_key_status(self, key_id: str) -> dict[str, Any]:
        """Document 004: state, usage against limits and counters of one key (masked)."""
        key = self.pool.require(key_id)
        snap = await self.snapshot([key_id])
        return key_status(key, snap[key_id], self.pool.masked(key_id))

    async def get_all_key_statuses(self) -> list[dict[str, Any]]:
        snap = await self.snapshot()
        keys, masked = self.pool.keys, self.pool.masked
        return [key_status(keys[k], snap[k], masked(k)) for k in snap]

    async def get_health_status(self) -> dict[str, dict[str, Any]]:
        """Document 003: per key id, model, active, last used, counts and whether cooling down."""
        snap = await self.snapshot()
        return {k: health_entry(self.pool.keys[k], snap[k]) for k in snap}

    async def get_stats(self) -> dict[str, Any]:
        """Document 001's statistics: totals, the strategy and per masked key counters."""
        pool = self.pool
        snap = await self.snapshot()
        entries = {pool.masked(k): stats_entry(pool.keys[k], snap[k]) for k in snap}
        models = sorted({k.model_name for k in pool.keys.values()})
        strategies = sorted({pool.strategy_for_model(m) for m in models})
        return {
            "total_keys": len(snap),
            "healthy_keys": self._healthy(snap),
            "rotation_strategy": strategies[0]
            if len(strategies) == 1
            else (strategies or ["capacity"]),
            "keys": entries,
        }

    def _healthy(self, snap: dict[str, dict[str, Any]]) -> int:
        return sum(1 for k in snap if key_state(self.pool.keys[k], snap[k])[0] == HEALTHY)

    async def health_check(self) -> dict[str, Any]:
        """Store, keys and secret store health for ``RequestRouter.health_check``."""
        store = self.pool.store
        out: dict[str, Any] = {"healthy": True}
        try:
            out["store"] = {
                **store.describe(),
                "ok": True,
                "latency_ms": round(await store.ping(), 3),
            }
        except StoreError as exc:
            out["store"] = {**store.describe(), "ok": False, "error": str(exc)}
            if not store.degraded:
                out["healthy"] = False
                return out
        if store.degraded:  # still serving, on local limits (router/failover.py)
            out["degraded"] = True
        snap = await self.snapshot()
        active = sum(1 for key in self.pool.keys.values() if key.active)
        out["keys"] = {"total": len(snap), "active": active, "healthy": self._healthy(snap)}
        if not active:  # nothing to serve with: not a passing health check
            out["healthy"] = False
            out["error"] = "no active API keys configured"
        out["secret_store"] = await self.pool.secrets.health_check()
        if not out["secret_store"].get("ok", False):
            out["healthy"] = False
        return out
