"""Limits learned from the provider: what status and the health check show of them (the
warning of a key configured above them is logged by keys/health_actions.py ``warn_above``).

OpenAI and Anthropic report a key's limits on every answer (``x-ratelimit-limit-*``,
``anthropic-ratelimit-*-limit``), Gemini in its 429s (``QuotaFailure``); router/provider_limits.py
turns them into the figures settle takes (``rpm,tpm,rpd,itpm,otpm``). lua/settle.lua keeps them in
the bucket's ``p:`` record (lua/records.py ``Learned``), shared by every process and kept across
restarts, and every reservation runs at (lua/lib_pool.lua ``read_limits``):

    nothing configured         the provider's figure ("learned")
    configured, not reported   the configured one ("configured")
    both                       the lower ("both"; a configured figure above the provider's is
                               logged once per bucket and figure: the key runs at the provider's)

A key with no limit configured takes one call at a time until its provider first answers; an
answer that reports nothing (Gemini's successes) leaves it without limits until a 429 says them.
``learn_limits: false`` on a key keeps its configured limits only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kernel.redis_keys import shard_of
from kernel.store import Store
from keys.models import APIKey
from lua.records import FIGURES, Learned, bucket_name, learned_field

#: The source of a limit in status: configured only, learned only, both (the lower applies).
CONFIGURED, LEARNED, BOTH = "configured", "learned", "both"


def divided_figures(said: str, divisor: int) -> str:
    """The figures a provider reported, as one of ``divisor`` processes adopts them on degraded
    mode's local store (each its share, like the configured limits there: keys/layout.py)."""
    if divisor <= 1 or not said:
        return said
    return ",".join(str(max(1, int(v) // divisor)) if v else "" for v in said.split(","))


def configured_figure(key: APIKey, name: str) -> int:
    return int(getattr(key, name) or 0)


def effective(key: APIKey, learned: Learned) -> dict[str, Any]:
    """Each limit the key's bucket runs at, its source and both figures (status)."""
    out: dict[str, Any] = {}
    for name in FIGURES:
        mine = configured_figure(key, name)
        theirs = learned.figure(name) if key.learn_limits else 0
        if mine and theirs:
            value, source = min(mine, theirs), BOTH
        elif theirs:
            value, source = theirs, LEARNED
        else:
            value, source = mine, CONFIGURED
        if value:
            out[name] = {"limit": value, "source": source, "configured": mine or None}
            out[name]["learned"] = theirs or None
    return out


def limits_status(key: APIKey, learned: Learned) -> dict[str, Any]:
    """The ``limits`` entry of a key's status: the limits it runs at with their source, the
    source of them all (``configured``, ``learned``, ``both``; ``none``: no limit known), and
    whether they are still being learned (no limit configured, the provider not answered yet)."""
    limits = effective(key, learned)
    sources = {entry["source"] for entry in limits.values()}
    if not sources:
        source = "none"
    elif len(sources) == 1:
        source = sources.pop()
    else:
        source = BOTH
    learning = (
        key.learn_limits
        and not learned.at
        and not any(configured_figure(key, n) for n in ("rpm", "tpm", "itpm", "otpm"))
    )
    return {
        **limits,
        "source": source,
        "learning": learning,
        "learned_at": learned.at or None,
    }


async def limits_report(store: Store, keys: Iterable[APIKey]) -> dict[str, dict[str, Any]]:
    """Per key, the limits its first model runs at and their source, as the pool's records hold
    them (``python -m router --health-check``); one read per pool shard."""
    names = store.keys
    by_hash: dict[str, list[APIKey]] = {}
    for key in keys:
        where = names if names.shards <= 1 else names.shard_view(shard_of(key.group, names.shards))
        by_hash.setdefault(where.pool_config, []).append(key)
    out: dict[str, dict[str, Any]] = {}
    for config, listed in by_hash.items():
        fields = [learned_field(bucket_name(k.group, k.bindings[0].model)) for k in listed]
        raw = await store.call(lambda c, h=config, f=fields: c.hmget(h, f))
        for key, record in zip(listed, raw, strict=True):
            out[key.key_id] = limits_status(key, Learned.decode(record))
    return out
