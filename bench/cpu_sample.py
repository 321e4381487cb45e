"""Where the router's CPU goes, one call at a time on Redis: samples taken on CPU time, not wall time.

    python bench/cpu_sample.py [--calls 5000] [--interval-us 200] [--top 60]

Starts a redis-server and the provider simulator (zero latency, its own process), then drives
``RequestRouter.complete`` one call at a time in this process with a ``SIGPROF`` timer: the kernel
fires it after every ``--interval-us`` of this process's CPU time (user and system), so a call
waiting on Redis or on the provider is never sampled, and a socket write that is preempted by the
process it wakes is not counted as this process's time (py-spy and pyinstrument sample wall time:
on a loaded machine they blame writes for time spent descheduled; cProfile adds ~1 µs to every
function call, and a request makes ~900). Prints the CPU per call and, in µs per call, the
functions on the stack (inclusive) and the innermost ones (self). A sample lands at the first
bytecode after the timer fired, so "self" blames the Python frame right after a C call (a socket
write, the HTTP parser): read it with the inclusive column. Used for docs/BENCHMARKS.md
("What the profiles showed, and what changed").
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BenchKey, install_uvloop, redis_server, simulator_config, write_pool

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]
ROOT = str(Path(__file__).resolve().parent.parent) + "/"


class Sampler:
    """Stacks counted at every SIGPROF: by function, inclusive and innermost."""

    def __init__(self) -> None:
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.innermost: collections.Counter[str] = collections.Counter()
        self.samples = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.samples += 1
        if frame is not None:
            self.innermost[_name(frame)] += 1
        seen: set[str] = set()
        while frame is not None:
            name = _name(frame)
            if name not in seen:
                seen.add(name)
                self.inclusive[name] += 1
            frame = frame.f_back


def _name(frame: FrameType) -> str:
    code = frame.f_code
    where = code.co_filename.split("site-packages/")[-1].replace(ROOT, "")
    return f"{code.co_qualname} ({re.sub(r'^.*/lib/python3[.0-9]*/', '', where)})"


async def drive(
    redis_url: str, keys_path: str, env: dict[str, str], calls: int, interval: float
) -> tuple[float, Sampler]:
    from kernel.settings import Settings
    from keys.manager import KeyManager
    from router.request_router import RequestRouter

    settings = Settings.from_env(
        {}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=f"cpu{os.getpid()}", LOG_LEVEL="WARNING"
    )
    manager = KeyManager(key_store_path=keys_path, settings=settings, environ=env)
    sampler = Sampler()
    async with RequestRouter(manager, settings=settings) as router:
        for _ in range(300):  # warm: connections, tokenizer, caches
            await router.complete(list(MESSAGES), MODEL, max_tokens=16)
        signal.signal(signal.SIGPROF, sampler)
        signal.setitimer(signal.ITIMER_PROF, interval, interval)
        start = time.process_time()
        try:
            for _ in range(calls):
                answer = await router.complete(list(MESSAGES), MODEL, max_tokens=16)
                if not answer["success"]:
                    raise SystemExit(f"a call failed: {answer['error']}")
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0, 0)
        cpu = time.process_time() - start
    return cpu / calls * 1e6, sampler


def report(per_call: float, sampler: Sampler, top: int) -> str:
    total = max(1, sampler.samples)
    lines = [f"CPU per call {per_call:.0f} µs ({sampler.samples} samples)", "", "inclusive:"]
    lines += [f"{n / total * per_call:7.1f} µs  {k}" for k, n in sampler.inclusive.most_common(top)]
    lines += ["", "innermost:"]
    lines += [f"{n / total * per_call:7.1f} µs  {k}" for k, n in sampler.innermost.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--interval-us", type=float, default=200.0)
    parser.add_argument("--top", type=int, default=60)
    args = parser.parse_args()
    from router.simulator import SimulatorProcess

    install_uvloop()
    keys = [BenchKey(f"p{i:02d}", rpm=1_000_000, tpm=1_000_000_000) for i in range(10)]
    with (
        tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp,
        redis_server() as redis_url,
        SimulatorProcess(simulator_config(keys)) as sim,
    ):
        keys_path, env = write_pool(Path(tmp), keys, sim.base_url_for("openai"))
        per_call, sampler = asyncio.run(
            drive(redis_url, str(keys_path), env, args.calls, args.interval_us / 1e6)
        )
    print(report(per_call, sampler, args.top))


if __name__ == "__main__":
    main()
