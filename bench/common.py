"""What every benchmark shares: servers it starts and stops, a pool wired to the simulator, the
machine description, percentiles, tables and the JSON results.

Benchmarks run from a checkout (``python bench/overhead.py``); this module puts the repository
root on ``sys.path`` so ``router``, ``keys`` and ``lua`` import without installing. Everything
listens on 127.0.0.1 and on free ports; every server a benchmark starts is stopped by the
context manager that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets as pysecrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
#: Benchmarks measure the code, not log formatting; both LiteLLM and the router log warnings only.
os.environ.setdefault("LOG_LEVEL", "WARNING")
#: LiteLLM must never fetch its model cost map from the network.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

PACKAGES = ("aiohttp", "redis", "hiredis", "fakeredis", "lupa", "uvloop", "litellm", "openai")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throw-away redis-server on a free loopback port (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: install it (apt-get install redis-server)")
    port, workdir = free_port(), tempfile.mkdtemp(prefix="bench-redis-")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", workdir]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def install_uvloop() -> str:
    """uvloop when installed (the ``speed`` extra), as a production deployment would run."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    uvloop.install()
    return "uvloop"


# -- the pool -----------------------------------------------------------------------------------
@dataclass
class BenchKey:
    """One key, configured identically on both sides: the simulator and the router's keys.json."""

    key_id: str
    rpm: int | None = None
    tpm: int | None = None
    rpm_burst: int | None = None
    strict: bool = False
    provider: str = "openai"
    model: str = "gpt-4o-mini"
    secret: str = field(default_factory=lambda: "sk-sim-" + pysecrets.token_urlsafe(18))

    @property
    def env_name(self) -> str:
        """Where the env secret store looks by default (``API_KEY_{KEY_ID}``, document 004)."""
        return "API_KEY_" + "".join(c if c.isalnum() else "_" for c in self.key_id.upper())

    def sim_key(self) -> Any:
        from router.simulator import SimKey

        return SimKey(
            key_id=self.key_id,
            secret=self.secret,
            providers=[self.provider],  # type: ignore[list-item]
            rpm=self.rpm,
            tpm=self.tpm,
            strict=self.strict,
        )

    def entry(self, base_url: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key_id": self.key_id,
            "provider": self.provider,
            "model_name": self.model,
            "base_url": base_url,
            "strict": self.strict,
        }
        for name in ("rpm", "tpm", "rpm_burst"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def write_pool(
    directory: Path, keys: Sequence[BenchKey], base_url: str
) -> tuple[Path, dict[str, str]]:
    """keys.json for the router and the environment holding the secrets (env secret store)."""
    path = directory / "keys.json"
    path.write_text(json.dumps({"keys": [k.entry(base_url) for k in keys]}), encoding="utf-8")
    return path, {k.env_name: k.secret for k in keys}


def simulator_config(keys: Sequence[BenchKey], **options: Any) -> Any:
    from router.simulator import SimulatorConfig

    return SimulatorConfig(keys=[k.sim_key() for k in keys], request_log_size=0, **options)


# -- numbers --------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: how much repeated runs of one case disagree."""
    if len(values) < 2 or not median(values):
        return 0.0
    return (max(values) - min(values)) / abs(median(values))


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    redis_version = ""
    if shutil.which("redis-server"):
        redis_version = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis": redis_version,
        "packages": package_versions(),
    }


def write_results(name: str, data: dict[str, Any], out: str | None = None) -> Path:
    """bench/results/<name>.json (or ``out``), with the machine and the command that made it."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "command": " ".join(["python", *[Path(sys.argv[0]).as_posix(), *sys.argv[1:]]]),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        **data,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def _cell(row: dict[str, Any], key: str, spec: str) -> str:
    value = row.get(key)
    return "-" if value is None else format(value, spec)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> None:
    """Print ``rows`` under ``columns``: (row key, header, format spec); "-" where a row has none."""
    widths = [
        max(len(header), *(len(_cell(row, key, spec)) for row in rows)) if rows else len(header)
        for key, header, spec in columns
    ]
    print("  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths, strict=True)))
    for row in rows:
        cells = [
            _cell(row, key, spec).rjust(w)
            for (key, _, spec), w in zip(columns, widths, strict=True)
        ]
        print("  ".join(cells))
