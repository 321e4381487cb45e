"""What the demo shows: a live per-key table under a progress bar, then a summary.

Rendering only (rich): the numbers come from the gateway's admin API (every key's state, requests
and tokens, as any operator sees them), the clients' tally, and the simulator's own books (what
each "provider" admitted, refused and injected), which ``summary`` puts together.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from router.demo.pool import CHAIN, DemoPool
from router.demo.traffic import Tally

STATE_STYLE = {
    "healthy": "green",
    "cooldown": "yellow",
    "circuit_open": "red",
    "half_open": "magenta",
    "disabled": "bright_black",
}
STATE_LABEL = {"circuit_open": "open", "half_open": "half-open"}
LEFT = ("key", "provider", "secret", "state")
CHAIN_TEXT = " -> ".join(CHAIN)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]driving traffic[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[line]}"),
    )


def tally_line(tally: Tally) -> str:
    return (
        f"{tally.sent} sent · {tally.served} served · {tally.refused} refused (no room) · "
        f"{tally.fallbacks} fallbacks"
    )


def key_table(statuses: list[dict[str, Any]], pool: DemoPool, elapsed: float) -> Table:
    """One row per key: its state, what it served, and how much of its capacity that is."""
    table = Table(title=f"the pool, from the gateway's admin API ({CHAIN_TEXT})", expand=False)
    for name in ("key", "provider", "secret", "state", "served", "tokens", "60 s/limit", "used"):
        table.add_column(name, justify="left" if name in LEFT else "right")
    keys = {k.key_id: k for k in pool.keys}
    for status in statuses:
        key = keys.get(status["key_id"])
        rpm = status.get("rpm_usage") or {}
        limit = rpm.get("limit")
        possible = (key.burst + key.rpm * elapsed / 60.0) if key else 0.0
        share = status["successes"] / possible if possible else 0.0
        state = status["state"]
        style = STATE_STYLE.get(state, "white")
        table.add_row(
            status["key_id"],
            status["provider"],
            status["masked_key"],
            f"[{style}]{STATE_LABEL.get(state, state)}[/]",
            str(status["successes"]),
            str(status["tokens"]),
            f"{rpm.get('count', 0)}/{limit}" if limit else str(rpm.get("count", 0)),
            f"{min(share, 9.99):.0%}",
        )
    table.caption = "used: served / what the key's limits allowed since the start"
    return table


def live_view(progress: Progress, table: Table | None) -> RenderableType:
    return Group(progress, table) if table is not None else progress


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="summary", show_header=False, expand=False)
    table.add_column("what")
    table.add_column("", justify="right")
    rows = [
        ("requests sent (OpenAI SDK -> gateway)", f"{summary['sent']}"),
        ("served", f"{summary['served']}"),
        (
            f"share of the pool's capacity used (first {summary['window']:.1f} s)",
            f"{summary['capacity_share']:.1%} of {summary['capacity']:.0f}",
        ),
        ("refused by the gateway: no room, with Retry-After", f"{summary['refused']}"),
        (
            "[bold]429s from the providers for exceeding a limit[/] (goal: 0)",
            f"[bold]{summary['provider_429s']}[/]",
        ),
        ("faults injected by the simulator (5xx, spurious 429)", f"{summary['injected_faults']}"),
        ("answers that rotated to another key", f"{summary['rotations']}"),
        ("answers served by a fallback model", f"{summary['fallbacks']}"),
        ("other errors", f"{sum(summary['errors'].values())}"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    table.caption = (
        "keys of the fallback models wait, full, until the first model runs out: "
        "their first seconds of refill are capacity this traffic cannot use"
    )
    return table


def provider_table(summary: dict[str, Any]) -> Table:
    """What each simulated provider key saw: the ground truth the router is judged by."""
    table = Table(title="what the providers saw (the simulator's books)", expand=False)
    for name in ("key", "admitted", "max in any 60 s", "limit", "429s (limits)", "faults"):
        table.add_column(name, justify="left" if name == "key" else "right")
    for key_id, row in summary["providers"].items():
        table.add_row(
            key_id,
            str(row["admitted"]),
            str(row["max_60s"]),
            str(row["rpm"]),
            str(row["rate_limited"]),
            str(row["faults"]),
        )
    return table
