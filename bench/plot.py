"""Plots of the latest benchmark results, for docs/BENCHMARKS.md.

    python bench/plot.py [--results bench/results] [--out docs]

Reads the JSON each benchmark wrote (overhead, goodput, reserve, memory, proxy; missing ones are skipped)
and writes one PNG per benchmark (``docs/bench-<name>.png``) with matplotlib's Agg backend (no
display needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
COLORS = {
    "direct": "#999999",
    "router": "#1f77b4",
    "router-redis": "#2ca02c",
    "gateway": "#17becf",
    "litellm": "#d62728",
    "litellm-usage": "#ff7f0e",
    "litellm-direct": "#e377c2",
    "gateway-2w": "#1f77b4",
    "litellm-proxy": "#d62728",
}


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.exists():
        print(f"{path}: not found, skipped", file=sys.stderr)
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def plot_overhead(data: dict[str, Any], out: Path) -> Path:
    rows = [r for r in data["rows"] if r["mode"] != "direct"]
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    levels = sorted({r["concurrency"] for r in rows})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        mine = {r["concurrency"]: r for r in rows if r["mode"] == mode}
        xs = [j + i * width for j in range(len(levels))]
        left.bar(
            xs,
            [max(1e-3, mine[c]["added_p50_ms"]) for c in levels],
            width,
            label=mode,
            color=COLORS.get(mode),
        )
        right.bar(xs, [mine[c]["requests_per_s"] for c in levels], width, color=COLORS.get(mode))
    direct = {r["concurrency"]: r for r in data["rows"] if r["mode"] == "direct"}
    for axis in (left, right):
        axis.set_xticks([j + 0.4 - width / 2 for j in range(len(levels))])
        axis.set_xticklabels([f"concurrency {c}" for c in levels])
    left.set_yscale("log")
    left.set_ylabel("added p50 latency over a direct call (ms, log)")
    left.axhline(0.35, color="black", linestyle=":", linewidth=1)
    left.text(-0.4, 0.38, "target 0.35 ms on Redis (concurrency 1)", fontsize=8)
    right.plot(
        [j + 0.4 - width / 2 for j in range(len(levels))],
        [direct[c]["requests_per_s"] for c in levels] if direct else [],
        "k_",
        markersize=30,
        label="direct",
    )
    right.set_ylabel("requests/s (one client process)")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.suptitle("Router overhead vs a direct call to the same simulated provider")
    fig.tight_layout()
    return save(fig, out / "bench-overhead.png")


def plot_goodput(data: dict[str, Any], out: Path) -> Path:
    rows = data["rows"]
    labels = [f"{r['system']}\n{r['limits']}, {r['processes']}p" for r in rows]
    shares = [r["goodput_share"] * 100 for r in rows]
    colors = [
        COLORS["router-redis"] if r["system"] == "router" else COLORS["litellm"] for r in rows
    ]
    fig, axis = plt.subplots(figsize=(11, 4.5))
    bars = axis.bar(range(len(rows)), shares, color=colors)
    for bar, row in zip(bars, rows, strict=True):
        axis.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height() + 1,
            f"{row['goodput_share']:.1%}\n429s: {row['provider_429s']}",
            ha="center",
            fontsize=8,
        )
    axis.axhline(99, color="black", linestyle=":", linewidth=1)
    axis.set_xticks(range(len(rows)))
    axis.set_xticklabels(labels, fontsize=8)
    axis.set_ylim(0, 115)
    axis.set_ylabel("served, % of rated capacity")
    axis.set_title(
        f"Goodput at 2x load for {data['settings']['seconds']:.0f} s "
        f"({data['settings']['keys']} keys x {data['settings']['rpm']} rpm); dotted: 99% target"
    )
    fig.tight_layout()
    return save(fig, out / "bench-goodput.png")


def plot_reserve(data: dict[str, Any], out: Path) -> Path:
    rows = [r for r in data["rows"] if r["mode"] != "noop"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for processes in sorted({r["processes"] for r in rows}):
        mine = sorted((r for r in rows if r["processes"] == processes), key=lambda r: r["keys"])
        keys = [r["keys"] for r in mine]
        left.plot(keys, [r["alone_p50_ms"] for r in mine], "o-", label=f"{processes} process(es)")
        right.plot(keys, [r["ops_per_s"] for r in mine], "o-", label=f"pairs, {processes}p")
        noop = next(r for r in data["rows"] if r["mode"] == "noop" and r["processes"] == processes)
        right.axhline(noop["ops_per_s"], linestyle=":", color="gray")
        right.text(keys[0], noop["ops_per_s"] * 1.05, f"no-op EVALSHA, {processes}p", fontsize=8)
    server = data["summary"].get("server_us", {})
    if server:
        sizes = sorted(int(k) for k in server)
        left.plot(
            sizes,
            [server[str(s)]["reserve_us"] / 1000 for s in sizes],
            "s--",
            label="server time of reserve (Redis)",
        )
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_xlabel("keys serving the model")
        axis.legend(fontsize=8)
    left.set_ylabel("reserve latency p50, one at a time (ms)")
    left.set_ylim(bottom=0)
    right.set_yscale("log")
    right.set_ylabel("per second (32 in flight per process)")
    fig.suptitle("Capacity engine: reserve latency and reserve+settle throughput vs pool size")
    fig.tight_layout()
    return save(fig, out / "bench-reserve.png")


def plot_memory(data: dict[str, Any], out: Path) -> Path:
    rows = data["rows"]
    fig, axis = plt.subplots(figsize=(8, 4.5))
    phases = [
        ("rss_cold_mib", "ready, no request yet"),
        ("rss_idle_mib", "idle (tokenizer loaded)"),
        ("rss_load_peak_mib", "peak under load"),
        ("rss_after_mib", "after the load"),
    ]
    width = 0.8 / len(phases)
    for i, (key, label) in enumerate(phases):
        axis.bar(
            [j + i * width for j in range(len(rows))],
            [r.get(key, 0) for r in rows],
            width,
            label=label,
        )
    axis.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))])
    axis.set_xticklabels([f"{r['keys']:,} keys" for r in rows])
    axis.set_ylabel("gateway RSS (MiB)")
    axis.set_title("Gateway memory (one process)")
    axis.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out / "bench-memory.png")


def plot_proxy(data: dict[str, Any], out: Path) -> Path:
    """Our gateway beside LiteLLM's proxy: requests/s per busy core and added p50 (log)."""
    rows = [r for r in data["rows"] if r["mode"] != "direct"]
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    levels = sorted({r["concurrency"] for r in rows})
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        mine = {r["concurrency"]: r for r in rows if r["mode"] == mode}
        xs = [j + i * width for j in range(len(levels))]
        color = COLORS.get(mode)
        left.bar(
            xs, [mine[c].get("per_core_requests_per_s", 0) for c in levels], width, color=color
        )
        right.bar(
            xs,
            [max(1e-3, mine[c].get("added_p50_ms", 0)) for c in levels],
            width,
            label=mode,
            color=color,
        )
    for axis in (left, right):
        axis.set_xticks([j + 0.4 - width / 2 for j in range(len(levels))])
        axis.set_xticklabels([f"{c} in flight" for c in levels])
    left.set_yscale("log")
    left.set_ylabel("requests/s per busy server core (log)")
    right.set_yscale("log")
    right.set_ylabel("added p50 over a direct call (ms, log)")
    right.legend(fontsize=8)
    fig.suptitle("Our gateway beside LiteLLM's proxy, same simulator and keys")
    fig.tight_layout()
    return save(fig, out / "bench-proxy.png")


def save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    results, out = Path(args.results), Path(args.out)
    plots = {
        "overhead": plot_overhead,
        "goodput": plot_goodput,
        "reserve": plot_reserve,
        "memory": plot_memory,
        "proxy": plot_proxy,
    }
    for name, plot in plots.items():
        data = load(results, name)
        if data is not None:
            print(f"wrote {plot(data, out)}")


if __name__ == "__main__":
    main()
