"""The capacity planner: how many keys a load needs (``python -m router plan``).

Document 004's rule of thumb (:func:`formula_keys`: ``peak_rpm / key_rpm * 1.5``) beside a
discrete-event model of the router and the provider simulator (:mod:`router.planner.model`) run at
the stated peak with bursts against N, N+1, ... keys (:mod:`router.planner.sweep`).
"""

from __future__ import annotations

from router.planner.load import Load, arrivals
from router.planner.model import KeyLimits, Outcome, RouterParams, simulate
from router.planner.sweep import Plan, Target, formula_keys, plan_keys

__all__ = [
    "KeyLimits",
    "Load",
    "Outcome",
    "Plan",
    "RouterParams",
    "Target",
    "arrivals",
    "formula_keys",
    "plan_keys",
    "simulate",
]
