"""The errors of a reservation the reserve script refused (keys/engine.py's ``reserve``): a
budget, a request too large for any key, no keys, or no room (with each key's why)."""

from __future__ import annotations

from kernel.errors import (
    AllKeysExhaustedError,
    BudgetExceededError,
    KeyUnavailability,
    RequestTooLargeError,
)
from lua import reserve as lua_reserve
from lua.usage_records import nanos_to_usd, parse_budget_field

NO_KEYS = "no active key serves this model"


Refused = (
    lua_reserve.NoRoom | lua_reserve.TooLarge | lua_reserve.NoKeys | lua_reserve.BudgetExceeded
)


def refusal(model: str, tokens: int, reply: Refused) -> Exception:
    """The error of a reservation refused: a budget, too large, no keys, or no room (with each
    key's why)."""
    if isinstance(reply, lua_reserve.BudgetExceeded):
        return _over_budget(model, reply)
    if isinstance(reply, lua_reserve.TooLarge):
        return RequestTooLargeError(model, tokens, reply.largest)
    if isinstance(reply, lua_reserve.NoRoom):
        notes = [KeyUnavailability(k.key_id, k.reason, k.until) for k in reply.keys]
        return AllKeysExhaustedError(
            model, retry_at=reply.earliest, now=reply.now, reason=reply.reason, keys=notes
        )
    return AllKeysExhaustedError(model, retry_at=None, now=reply.now, reason=NO_KEYS)


def _over_budget(model: str, reply: lua_reserve.BudgetExceeded) -> BudgetExceededError:
    scope, name = parse_budget_field(reply.field)
    return BudgetExceededError(
        reply.field,
        scope=scope,
        name=name,
        limit_usd=nanos_to_usd(reply.limit),
        used_usd=None if reply.used < 0 else nanos_to_usd(reply.used),
        reset_at=reply.resets_at,
        now=reply.now,
        period=reply.period,
        model=model,
    )
