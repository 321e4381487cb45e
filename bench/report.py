"""Markdown tables of the latest results, as docs/BENCHMARKS.md shows them.

    python bench/report.py [--results bench/results]

Reads the JSON the benchmarks wrote and prints one table per benchmark plus the machine they ran
on, so the document's numbers are copied from the results, never typed by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    def cell(row: dict[str, Any], key: str, spec: str) -> str:
        value = row.get(key)
        return "–" if value is None else format(value, spec)

    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |"]
    lines.append("|" + "|".join("---" if spec == "" else "---:" for _, _, spec in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(cell(row, k, spec) for k, _, spec in columns) + " |")
    return "\n".join(lines)


def overhead(data: dict[str, Any]) -> str:
    return table(
        data["rows"],
        [
            ("mode", "mode", ""),
            ("concurrency", "in flight", "d"),
            ("requests_per_s", "req/s", ",.0f"),
            ("p50_ms", "p50 ms", ".2f"),
            ("p99_ms", "p99 ms", ".2f"),
            ("added_p50_ms", "added p50 ms", ".2f"),
            ("added_p99_ms", "added p99 ms", ".2f"),
            ("cpu_us_per_request", "client CPU µs/req", ",.0f"),
            ("added_cpu_us_per_request", "added CPU µs/req", ",.0f"),
            ("server_cpu_us_per_request", "gateway CPU µs/req", ",.0f"),
            ("server_cpu_share", "gateway CPU busy", ".2f"),
        ],
    )


def goodput(data: dict[str, Any]) -> str:
    told = any(
        r.get("configured_rpm_per_key", r["rpm_per_key"]) != r["rpm_per_key"] for r in data["rows"]
    )
    extra = [("configured_rpm_per_key", "rpm configured", "d")] if told else []
    return table(
        data["rows"],
        [
            ("system", "system", ""),
            ("limits", "limits", ""),
            ("processes", "processes", "d"),
            ("offered", "offered", ",d"),
            ("rated_capacity", "rated capacity", ",.0f"),
            ("successes_in_run", "served in T", ",d"),
            ("goodput_share", "share", ".1%"),
            ("steady_share", "steady share", ".1%"),
            ("provider_429s", "429s", "d"),
            ("local_refusals", "refused locally", ",d"),
            ("max_60s_requests_per_key", "max 60 s per key", "d"),
            ("rpm_per_key", "rpm", "d"),
            *extra,
        ],
    )


def reserve(data: dict[str, Any]) -> str:
    return table(
        data["rows"],
        [
            ("mode", "mode", ""),
            ("keys", "keys", ",d"),
            ("processes", "processes", "d"),
            ("alone_p50_ms", "alone p50 ms", ".3f"),
            ("alone_p99_ms", "alone p99 ms", ".3f"),
            ("ops_per_s", "per s (32 in flight/process)", ",.0f"),
            ("p50_ms", "loaded p50 ms", ".2f"),
            ("server_us_per_call", "Redis µs/call", ".1f"),
        ],
    )


def memory(data: dict[str, Any]) -> str:
    return table(
        data["rows"],
        [
            ("keys", "keys", ",d"),
            ("ready_seconds", "ready s", ".1f"),
            ("rss_cold_mib", "ready MiB", ".1f"),
            ("rss_idle_mib", "idle MiB", ".1f"),
            ("rss_load_peak_mib", "peak under load MiB", ".1f"),
            ("rss_after_mib", "after MiB", ".1f"),
            ("requests_per_s", "req/s", ",.0f"),
            ("gateway_cpu_us_per_request", "gateway CPU µs/req", ",.0f"),
        ],
    )


def proxy(data: dict[str, Any]) -> str:
    rows = table(
        data["rows"],
        [
            ("mode", "mode", ""),
            ("concurrency", "in flight", "d"),
            ("requests_per_s", "req/s", ",.0f"),
            ("added_p50_ms", "added p50 ms", ".2f"),
            ("added_p99_ms", "added p99 ms", ".2f"),
            ("server_cpu_us_per_request", "server CPU µs/req", ",.0f"),
            ("server_cpu_share", "server cores busy", ".2f"),
            ("per_core_requests_per_s", "req/s per busy core", ",.0f"),
        ],
    )
    ratios = [
        {"concurrency": int(level), **entry} for level, entry in data.get("ratios", {}).items()
    ]
    return (
        rows
        + "\n\n"
        + table(
            ratios,
            [
                ("concurrency", "in flight", "d"),
                ("per_core_ratio", "req/s per core: ours / LiteLLM's", ".1f"),
                ("added_p50_ratio", "added p50: LiteLLM's / ours", ".1f"),
                ("added_p99_ratio", "added p99: LiteLLM's / ours", ".1f"),
                ("two_workers_requests_per_s_ratio", "req/s: 2 workers / 1", ".2f"),
            ],
        )
    )


def machine(data: dict[str, Any]) -> str:
    m = data["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    return (
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['platform']}, Python {m['python']}, "
        f"{m['redis']}; {packages}; load average at start {m['load_average_at_start']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    results = Path(args.results)
    for name, render in (
        ("overhead", overhead),
        ("goodput", goodput),
        ("goodput-overconfigured", goodput),
        ("reserve", reserve),
        ("memory", memory),
        ("proxy", proxy),
    ):
        path = results / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        print(f"## {name}\n\n`{data['command']}` ({data['finished_at']})\n")
        print(f"Machine: {machine(data)}\n")
        print(render(data) + "\n")


if __name__ == "__main__":
    main()
