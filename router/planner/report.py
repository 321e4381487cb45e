"""The plan as text (a table per model) or JSON."""

from __future__ import annotations

from typing import Any

from router.planner.sweep import FORMULA_FACTOR, Plan


def plan_dict(plan: Plan) -> dict[str, Any]:
    load = plan.load
    return {
        "model": plan.model,
        "key_limits": plan.limits.describe(),
        "load": {
            "peak_rpm": load.peak_rpm,
            "tokens_per_request": load.tokens_per_request,
            "reserve_tokens": load.reserved,
            "duration_s": load.duration,
            "warmup_s": load.warmup,
            "burst": load.burst,
            "burst_seconds": load.burst_seconds,
            "seed": load.seed,
            "keys_start": "full" if load.fresh else "drained",
        },
        "target": {"goodput": plan.target.goodput, "p95_wait_s": plan.target.p95_wait},
        "formula_keys": plan.formula,
        "load_over_one_key": None if plan.raw is None else round(plan.raw, 4),
        "simulated_keys": plan.needed,
        "configured_keys": plan.have,
        "keys_to_add": plan.short,
        "rows": [row.as_dict() for row in plan.rows],
    }


def plan_table(plan: Plan) -> str:
    load, target = plan.load, plan.target
    lines = [
        f"model {plan.model}: {load.peak_rpm:g} requests/min at peak, {load.tokens_per_request} tokens"
        f" each ({load.reserved} reserved), bursts of {load.burst:g}x for {load.burst_seconds:g} s"
        f" a minute; keys of {plan.limits.describe()}",
        _formula_line(plan),
        "",
        f"{'keys':>5} {'goodput':>8} {'p50 wait':>9} {'p95 wait':>9} {'refused':>8} {'429s':>6}",
    ]
    for row in plan.rows:
        mark = "  <- enough" if row.keys == plan.needed else ""
        lines.append(
            f"{row.keys:>5} {row.goodput:>8.2%} {row.wait_quantile(0.5):>8.2f}s"
            f" {row.wait_quantile(0.95):>8.2f}s {row.rate_limited:>8} {row.provider_429:>6}{mark}"
        )
    lines.append("")
    lines.append(_verdict(plan))
    wait = f" and p95 wait <= {target.p95_wait:g} s" if target.p95_wait is not None else ""
    lines.append(
        f"(target: goodput >= {target.goodput:.2%}{wait}; {load.duration:g} s measured after"
        f" {load.warmup:g} s of warm-up, keys starting {'full' if load.fresh else 'drained'};"
        " refused = rate_limited after the router's wait)"
    )
    return "\n".join(lines) + "\n"


def _formula_line(plan: Plan) -> str:
    if plan.formula is None or plan.raw is None:
        return "document 004's formula: n/a (the keys have no rpm or tpm limit)"
    return (
        f"document 004's formula: keys_needed = peak / key limit x {FORMULA_FACTOR:g}"
        f" = {plan.raw:.2f} x {FORMULA_FACTOR:g} -> {plan.formula} key{'s' if plan.formula != 1 else ''}"
    )


def _verdict(plan: Plan) -> str:
    if plan.needed is None:
        tried = plan.rows[-1].keys if plan.rows else 0
        return f"simulation: no pool up to {tried} keys met the target (raise --max-keys)"
    text = f"simulation: {plan.needed} key{'s' if plan.needed != 1 else ''} needed"
    if plan.have is not None:
        short = plan.short or 0
        text += f"; configured: {plan.have}" + (f" -> add {short}" if short else " -> enough")
    return text


def pool_summary(plans: list[Plan]) -> str:
    """``--keys``: per model, keys configured, needed (simulated and by the formula), to add."""
    lines = [
        f"{'model':<32} {'configured':>10} {'needed':>7} {'formula':>8} {'add':>5}",
    ]
    for plan in plans:
        needed = "?" if plan.needed is None else str(plan.needed)
        formula = "n/a" if plan.formula is None else str(plan.formula)
        short = "?" if plan.short is None else str(plan.short)
        lines.append(f"{plan.model:<32} {plan.have or 0:>10} {needed:>7} {formula:>8} {short:>5}")
    more = [p for p in plans if p.short]
    if more:
        lines.append("needs more keys: " + ", ".join(f"{p.model} (+{p.short})" for p in more))
    else:
        lines.append("every model has enough keys for this load")
    return "\n".join(lines) + "\n"
