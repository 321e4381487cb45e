"""The capacity engine's reading side: health, counters and per-bucket usage for status.

Reads records directly (no script): the formats are lua/records.py's, and the counters are moved
to now with lua.records' mirror of lib_pool.lua's roll() and gcra_level().
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from keys.layout import PoolLayout
from keys.learned import limits_status
from keys.models import APIKey
from lua.records import Health, Learned, State, bucket_name, gcra_level, learned_field, rolled

STAT_FIELDS = (
    "requests",
    "successes",
    "failures",
    "rate_limited",
    "released",
    "tokens",
    "last_used",
    "last_error",
    "last_error_at",
    "provider_limits",
)


class UsageReader(PoolLayout):
    """Status reads of the pool: one key's health and counters, many keys' in three reads."""

    async def bucket_usage(
        self, bucket: str, key: APIKey, now: float | None = None
    ) -> dict[str, Any]:
        """Usage of one bucket: sliding-minute requests/tokens, the day's, room left, blocks."""
        now = await self.now() if now is None else now
        raw = await self.store.call(lambda c: c.hget(self.names.pool_state, bucket))
        learned = await self.store.call(
            lambda c: c.hget(self.names.pool_config, learned_field(bucket))
        )
        return usage_from_state(raw, key, now, learned)

    async def health(self, key_id: str) -> dict[str, Any]:
        raw = await self.store.call(lambda c: c.hget(self.names.pool_health, key_id))
        return health_dict(Health.decode(raw))

    async def stats(self, key_id: str) -> dict[str, Any]:
        return (
            (await self.snapshot([key_id]))[key_id]["stats"]
            if key_id in self._keys
            else parse_stats({})
        )

    async def snapshot(self, key_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Health, counters and per-model usage of many keys in three reads, whatever their number."""
        if not key_ids:
            return {}
        now = await self.now()
        buckets: list[tuple[str, str, str]] = []
        for key_id in key_ids:
            key = self._keys.get(key_id)
            models = self.models_of_key(key_id) or ([key.model_name] if key else [])
            buckets.extend((key_id, m, bucket_name(key.group, m)) for m in models if key)
        # commands as functions of a client: should the shared store fail under them, they run
        # again on degraded mode's local store instead of failing the caller
        stat_fields = [f"{k}:{f}" for k in key_ids for f in STAT_FIELDS]
        names = [b for _, _, b in buckets]
        health_raw = await self.store.call(lambda c: c.hmget(self.names.pool_health, list(key_ids)))
        stats_raw = await self.store.call(lambda c: c.hmget(self.names.pool_stats, stat_fields))
        state_raw = (
            await self.store.call(lambda c: c.hmget(self.names.pool_state, names)) if names else []
        )
        fields = [learned_field(b) for b in names]
        learned_raw = (
            await self.store.call(lambda c: c.hmget(self.names.pool_config, fields))
            if names
            else []
        )
        out: dict[str, dict[str, Any]] = {}
        width = len(STAT_FIELDS)
        for i, key_id in enumerate(key_ids):
            values = stats_raw[i * width : (i + 1) * width]
            out[key_id] = {
                "health": health_dict(Health.decode(health_raw[i])),
                "stats": parse_stats(dict(zip(STAT_FIELDS, values, strict=True))),
                "usage": {},
                "now": now,
            }
        for (key_id, model, _), raw, learned in zip(buckets, state_raw, learned_raw, strict=True):
            out[key_id]["usage"][model] = usage_from_state(raw, self._keys[key_id], now, learned)
        return out


def health_dict(h: Health) -> dict[str, Any]:
    return {
        "state": h.state,
        "until": h.until,
        "reason": h.reason,
        "level": h.level,
        "fails": h.fails,
    }


def _day(now: float, tz: str) -> int:
    offset = datetime.fromtimestamp(now, tz=ZoneInfo(tz)).utcoffset()
    return int((now + (offset.total_seconds() if offset else 0)) // 86400)


def _room(tat: float, now: float, limit: int | None, burst: int | None) -> float | None:
    if not limit:
        return None
    return max(0.0, (burst or limit) - gcra_level(tat, now, limit))


def usage_from_state(
    raw: str | None, key: APIKey, now: float, learned_raw: str | None = None
) -> dict[str, Any]:
    """A bucket's usage at ``now`` as status shows it, from its state record, against the limits
    it runs at (configured and learned: keys/learned.py)."""
    s = rolled(State.decode(raw), now, _day(now, key.reset_tz))
    limits = limits_status(key, Learned.decode(learned_raw))
    rpm, rpm_burst = _limit(limits, "rpm", key.rpm_burst)
    tpm, tpm_burst = _limit(limits, "tpm", key.tpm_burst)
    weight = 1.0 - (now % 60) / 60.0  # share of the previous minute inside the sliding minute
    return {
        "rpm": {
            "count": round(s.prev_req * weight + s.min_req),
            "limit": rpm,
            "available": _room(s.tat_r, now, rpm, rpm_burst),
        },
        "tpm": {
            "used": round(s.prev_tok * weight + s.min_tok),
            "limit": tpm,
            "available": _room(s.tat_t, now, tpm, tpm_burst),
        },
        "rpd": {"count": s.day_req, "limit": _limit(limits, "rpd", None)[0], "tokens": s.day_tok},
        **_io_usage(limits, s, now),
        "limits": limits,
        "blocked_until": s.blocked if s.blocked > now else None,
        "backoff_level": s.level,
    }


def _limit(limits: dict[str, Any], name: str, burst: int | None) -> tuple[int | None, int | None]:
    """A limit the bucket runs at (None: none), and its burst: the configured one unless the
    provider's figure is lower (then at most that figure)."""
    entry = limits.get(name)
    if entry is None:
        return None, None
    value = int(entry["limit"])
    return value, min(burst, value) if burst and entry["source"] != "learned" else value


def _io_usage(limits: dict[str, Any], s: State, now: float) -> dict[str, Any]:
    """Room left in the input and output token limits (Anthropic's), when the bucket has them."""
    out: dict[str, Any] = {}
    for name, tat in (("itpm", s.tat_i), ("otpm", s.tat_o)):
        value = _limit(limits, name, None)[0]
        if value:
            out[f"{name}_usage"] = {"limit": value, "available": _room(tat, now, value, value)}
    return out


def parse_stats(raw: dict[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("requests", "successes", "failures", "rate_limited", "released", "tokens"):
        out[name] = int(raw.get(name) or 0)
    for name in ("last_used", "last_error_at"):
        value = raw.get(name)
        out[name] = float(value) if value else None
    out["last_error"] = raw.get("last_error") or None
    out["provider_limits"] = raw.get("provider_limits") or None
    return out
