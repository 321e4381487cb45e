"""The plan: document 004's formula beside the model's results for N, N+1, ... keys."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kernel.errors import ConfigError
from router.planner.load import Load
from router.planner.model import KeyLimits, Outcome, RouterParams, simulate

#: Document 004's safety factor: keys_needed = peak_rpm / key_rpm * 1.5
FORMULA_FACTOR = 1.5


@dataclass(frozen=True)
class Target:
    """A pool is enough when at least ``goodput`` of the requests are served (each within the
    router's wait, ``RouterParams.wait_budget``) and, if set, their p95 wait is at most ``p95_wait``."""

    goodput: float = 0.99
    p95_wait: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.goodput <= 1:
            raise ConfigError(f"--target must be in (0, 1] (got {self.goodput!r})")
        if self.p95_wait is not None and self.p95_wait < 0:
            raise ConfigError(f"--p95-wait must not be negative (got {self.p95_wait!r})")

    def met(self, outcome: Outcome) -> bool:
        if outcome.goodput < self.goodput:
            return False
        return self.p95_wait is None or outcome.wait_quantile(0.95) <= self.p95_wait


@dataclass
class Plan:
    """``formula``: document 004's figure (rounded up; None when the keys have no limit to divide
    by); ``raw``: the load over one key's capacity; ``rows``: one outcome per pool size tried;
    ``needed``: the smallest size that met the target (None if none tried did)."""

    model: str
    limits: KeyLimits
    load: Load
    target: Target
    formula: int | None
    raw: float | None
    rows: list[Outcome] = field(default_factory=list)
    needed: int | None = None
    have: int | None = None

    @property
    def short(self) -> int | None:
        """Keys to add to the configured pool (``--keys``), 0 when it is enough."""
        if self.have is None or self.needed is None:
            return None
        return max(0, self.needed - self.have)


def load_ratio(load: Load, limits: KeyLimits) -> float | None:
    """Peak load over one key's limit, by requests or tokens, whichever binds."""
    ratios = []
    if limits.rpm:
        ratios.append(load.peak_rpm / limits.rpm)
    if limits.tpm:
        ratios.append(load.peak_rpm * load.tokens_per_request / limits.tpm)
    return max(ratios) if ratios else None


def formula_keys(peak_rpm: float, key_rpm: float, factor: float = FORMULA_FACTOR) -> int:
    """Document 004: ``keys_needed = peak_rpm / key_rpm * 1.5``, rounded up (100 / 10 -> 15)."""
    return math.ceil(round(peak_rpm / key_rpm * factor, 9))


def plan_keys(
    model: str,
    limits: KeyLimits,
    load: Load,
    *,
    target: Target | None = None,
    params: RouterParams | None = None,
    existing: list[KeyLimits] | None = None,
    max_keys: int | None = None,
) -> Plan:
    """Simulate pools from one below the load's bare need upward until one meets the target
    (then one more, to show the plateau), or ``max_keys``. With ``existing`` (a configured pool),
    pools are its first N keys, then it plus keys of ``limits``."""
    target = target or Target()
    raw = load_ratio(load, limits)
    formula = None if raw is None else math.ceil(round(raw * FORMULA_FACTOR, 9))
    plan = Plan(model, limits, load, target, formula, raw, have=len(existing) if existing else None)
    start = 1 if raw is None else max(1, math.ceil(round(raw, 9)) - 1)
    top = max_keys or max(start + 2, 2 * (formula or 1) + 2)
    if top < start:
        raise ConfigError(f"--max-keys must be at least {start} for this load (got {top})")
    for n in range(start, top + 1):
        pool = _pool(n, limits, existing or [])
        outcome = simulate(pool, load, params)
        plan.rows.append(outcome)
        if plan.needed is not None:
            break
        if target.met(outcome):
            plan.needed = n
    return plan


def _pool(n: int, limits: KeyLimits, existing: list[KeyLimits]) -> list[KeyLimits]:
    if n <= len(existing):
        return existing[:n]
    return existing + [limits] * (n - len(existing))
