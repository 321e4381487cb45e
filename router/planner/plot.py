"""The plot: goodput and p95 wait against the number of keys (PNG, with matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from router.planner.sweep import Plan

MISSING = (
    "matplotlib is not installed: no plot written (pip install 'llm-keypool-router[plan]');"
    " the table above has the same figures"
)


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plot(plans: Sequence[Plan], path: Path) -> None:
    """One panel per model: goodput (left axis) and p95 wait (right axis) per pool size, the
    formula's figure and the simulated need marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(plans), 1, figsize=(7, 3.6 * len(plans)), squeeze=False)
    for ax, plan in zip(axes[:, 0], plans, strict=True):
        keys = [row.keys for row in plan.rows]
        ax.plot(
            keys, [row.goodput * 100 for row in plan.rows], "o-", color="tab:blue", label="goodput"
        )
        ax.axhline(plan.target.goodput * 100, color="tab:blue", linestyle=":", linewidth=1)
        ax.set_xlabel("keys")
        ax.set_ylabel("goodput (% served)", color="tab:blue")
        ax.set_xticks(keys)
        wait = ax.twinx()
        wait.plot(
            keys,
            [row.wait_quantile(0.95) for row in plan.rows],
            "s--",
            color="tab:red",
            label="p95 wait",
        )
        wait.set_ylabel("p95 wait (s)", color="tab:red")
        if plan.needed is not None:
            ax.axvline(
                plan.needed, color="tab:green", linewidth=1, label=f"simulated: {plan.needed}"
            )
        if plan.formula is not None and keys and plan.formula <= max(keys) + 1:
            ax.axvline(
                plan.formula,
                color="tab:gray",
                linestyle="--",
                linewidth=1,
                label=f"formula: {plan.formula}",
            )
        ax.set_title(
            f"{plan.model}: {plan.load.peak_rpm:g} requests/min, keys of {plan.limits.describe()}"
        )
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
