"""Status answers for operators, in the shapes of documents 001, 003 and 004.

Everything here is shaped from a snapshot (keys/engine.py ``snapshot``) and never holds a secret:
keys are named by id and by their masked form (``sk-proj-abc...xyz1``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from keys.models import APIKey

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
