"""The capacity engine's health writes: cooldowns, disabling and enabling keys, resetting breakers
in the pool's records (lua/set_health.lua through its binding). KeyManager's side of the same
actions (logging, checks, the admin API) is keys/health_actions.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from keys.usage import UsageReader
from lua import set_health


class PoolHealth(UsageReader):
    """An operator's (or the router's) changes of a key's health records."""

    async def _set_health(
        self, key_id: str, action: set_health.Action, seconds: float = 0, reason: str = ""
    ) -> dict[str, Any]:
        buckets: list[str] = []
        if key_id in self._keys:
            buckets = sorted(
                {
                    layout.buckets[key_id]
                    for layout in self._layouts.values()
                    if key_id in layout.buckets
                }
            )
        n = self.names
        keys = set_health.SetHealthKeys(
            n.pool_config, n.pool_state, n.pool_health, self._ready_sets(key_id)
        )
        args = set_health.SetHealthArgs(key_id, action, seconds, reason, self._now_arg(), buckets)
        reply = await set_health.run(self.store, keys, args)
        return {"state": reply.state, "until": reply.until, "reason": reply.reason}

    async def cooldown(self, key_id: str, seconds: float, reason: str = "manual") -> dict[str, Any]:
        return await self._set_health(key_id, "cooldown", seconds, reason)

    async def clear_cooldown(self, key_id: str) -> dict[str, Any]:
        return await self._set_health(key_id, "clear")

    async def disable(self, key_id: str, reason: str = "manual") -> dict[str, Any]:
        return await self._set_health(key_id, "disable", 0, reason)

    async def enable(self, key_id: str) -> dict[str, Any]:
        """Revive a disabled key (an auth-disabled key comes back only this way) and re-index it."""
        result = await self._set_health(key_id, "enable")
        for model, layout in list(self._layouts.items()):
            if key_id in layout.tier_of:
                await self._sync_index(model)
        return result

    async def reset_breakers(self, key_ids: Iterable[str]) -> list[str]:
        """Close open circuits of these keys (an operator's action: the router no longer resets
        them on its own, see RESET_BREAKERS_WHEN_ALL_UNHEALTHY); auth failures stay."""
        reset = []
        for key_id in key_ids:
            health = await self.health(key_id)
            if health["state"] in ("open", "probing"):
                await self._set_health(key_id, "reset")
                reset.append(key_id)
        return reset
