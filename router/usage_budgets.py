"""The budgets a call counts against, and the soft alerts its reservation raised.

A call counts against the global budget and its caller's: user, team, virtual key
(kernel/usage_record.Attribution). Every field is passed to the reserve script, which ignores
those with no budget (lua/reserve.lua), so a budget set over the admin API by any process holds in
every process at once. Alerts fire once per budget and period, in the process whose reservation
crossed the share (lua/lib_usage.lua): logged here and counted in :data:`ALERTS` (by scope).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from kernel.log import get_logger
from kernel.usage_record import Attribution
from lua.usage_records import budget_field, parse_budget_field

log = get_logger("router.budgets")

#: Soft alerts raised by this process, by scope (global, user, team, vkey).
ALERTS: Counter[str] = Counter()


def budget_fields(who: Attribution) -> tuple[str, ...]:
    """The budget fields of a call: ``global``, then its user's, team's and virtual key's."""
    fields = ["global"]
    for scope, ident in (("user", who.user), ("team", who.team), ("vkey", who.vkey)):
        if ident:
            fields.append(budget_field(scope, ident))
    return tuple(fields)


def budget_alerts(
    fields: tuple[str, ...], who: Attribution, hooks: Iterable[Callable[[str], None]] = ()
) -> None:
    """Log and count the budgets whose alert share this call's reservation crossed."""
    for field in fields:
        scope, ident = parse_budget_field(field)
        ALERTS[scope] += 1
        for hook in hooks:
            hook(scope)
        log.warning(
            "budget alert: spend passed its alert share",
            budget=field,
            scope=scope,
            id=ident or None,
            user=who.user,
            team=who.team,
        )
