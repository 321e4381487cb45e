"""At start on Redis: is the server set up to keep the router's state? (README "Redis in production")

Virtual keys, revocations, run-time key changes and the limiter's state live only in Redis. The
router reads ``CONFIG GET appendonly``, ``save`` and ``maxmemory-policy`` and logs a warning when
an eviction policy could drop that state or when nothing is persisted. A server where CONFIG is
disabled or renamed (managed services often do that) is logged as not checked, never an error.

Which keys an eviction policy can take:

* ``allkeys-*``: any key, the pool's limiter state and health, virtual keys and revocation markers
  included: limits are forgotten (calls past a provider's limit), revoked keys may come back.
* ``volatile-*``: keys with a TTL only: conversations, reservations (their charge is then never
  refunded) and the gateway's per-user, global and per-virtual-key limit windows (forgotten:
  requests past those limits are let through). The key pool's own state carries no TTL.
* ``noeviction``: nothing; a full Redis refuses writes instead (calls then answer
  ``store_unavailable``: loudly), which is the only policy that never loses state silently.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from kernel.log import get_logger
from kernel.store import Store

log = get_logger("router.store")

SAFE_POLICY = "noeviction"


async def _config(client: Any, name: str) -> str | None:
    """One CONFIG GET value (the first node's on a Cluster); None when it cannot be read."""
    reply = await client.config_get(name)
    if not isinstance(reply, dict) or not reply:
        return None
    value = reply.get(name)
    if value is None:  # a Cluster may answer per node: {node: {name: value}}
        nested = next(iter(reply.values()))
        value = nested.get(name) if isinstance(nested, dict) else None
    return None if value is None else str(value)


def persistence_warnings(appendonly: str, save: str, policy: str) -> list[str]:
    """What an operator should fix, in words (empty when the server keeps everything)."""
    warnings = []
    if policy != SAFE_POLICY:
        what = (
            "conversations, reservations and the gateway's limit windows (keys with a TTL)"
            if policy.startswith("volatile-")
            else "any key: the key pool's limiter state, virtual keys and revocations included"
        )
        warnings.append(
            f"Redis maxmemory-policy is {policy}: once maxmemory is reached it evicts {what}; "
            f"set maxmemory-policy {SAFE_POLICY}"
        )
    if appendonly != "yes":
        if save.strip():
            warnings.append(
                "Redis persists only RDB snapshots (appendonly no): changes since the last "
                "snapshot (virtual keys, revocations, run-time key changes) are lost when it "
                "restarts; set appendonly yes"
            )
        else:
            warnings.append(
                'Redis persists nothing (appendonly no, save ""): virtual keys, revocations and '
                "run-time key changes are lost when it restarts; set appendonly yes"
            )
    return warnings


async def check_redis_settings(store: Store) -> list[str]:
    """Log (and answer) the warnings for the shared store's server; [] when fine or unchecked."""
    if store.is_embedded:
        return []
    client = store.shared_client
    try:
        appendonly = await _config(client, "appendonly")
        save = await _config(client, "save")
        policy = await _config(client, "maxmemory-policy")
    except (RedisError, OSError) as exc:
        log.info(
            "could not check the Redis server's persistence and eviction settings "
            "(CONFIG GET refused or renamed); see the README's 'Redis in production'",
            store=store.describe_target(),
            error=str(exc),
        )
        return []
    if appendonly is None or save is None or policy is None:
        log.info(
            "could not check the Redis server's persistence and eviction settings "
            "(CONFIG GET answered nothing); see the README's 'Redis in production'",
            store=store.describe_target(),
        )
        return []
    warnings = persistence_warnings(appendonly, save, policy)
    for warning in warnings:
        log.warning(warning, store=store.describe_target())
    return warnings
