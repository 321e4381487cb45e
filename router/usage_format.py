"""Usage summaries and budget statuses as text: an aligned table, CSV or JSON.

In a summary's table and CSV the calls with no name in the dimension show as ``(none)`` and the
last row is the total; JSON is :meth:`UsageSummary.as_dict` (``name`` null for those calls).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence

from keys.budgets import BudgetStatus
from router.usage_report import UsageRow, UsageSummary

FORMATS = ("table", "csv", "json")
COLUMNS = ("requests", "tokens_in", "tokens_out", "cost_usd", "errors")
BUDGET_COLUMNS = (
    "scope",
    "id",
    "limit_usd",
    "period",
    "timezone",
    "spent_usd",
    "reserved_usd",
    "remaining_usd",
    "requests",
    "resets_at",
)


def iso(unix: float) -> str:
    """A unix time as ISO 8601 UTC, to the second."""
    moment = dt.datetime.fromtimestamp(unix, dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def _cells(row: UsageRow) -> list[str]:
    name = "(none)" if row.name is None else row.name
    return [
        name,
        str(row.requests),
        str(row.tokens_in),
        str(row.tokens_out),
        f"{row.cost_usd:.6f}",
        str(row.errors),
    ]


def align(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned."""
    table = [list(header), *map(list, rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def format_summary(report: UsageSummary, fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2) + "\n"
    header = [report.by if report.by != "total" else "", *COLUMNS]
    rows = [_cells(row) for row in report.rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["name", *COLUMNS])
        writer.writerows([*rows, _cells(report.total)])
        return out.getvalue()
    title = f"usage from {iso(report.since)} to {iso(report.until)}, by {report.by}\n"
    return title + align(header, [*rows, _cells(report.total)])


def format_budgets(statuses: Sequence[BudgetStatus], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps([s.as_dict() for s in statuses], indent=2) + "\n"
    if not statuses:
        return "(no budgets)\n"
    rows = [
        [
            s.scope,
            s.id or "-",
            f"{s.limit_usd:.2f}",
            s.period,
            s.timezone,
            f"{s.spent_usd:.6f}",
            f"{s.reserved_usd:.6f}",
            f"{s.remaining_usd:.6f}",
            str(s.requests),
            iso(s.resets_at),
        ]
        for s in statuses
    ]
    return align(BUDGET_COLUMNS, rows)
