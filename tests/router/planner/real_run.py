"""The same load through the real router against the real provider simulator (the planner's
validation): requests fired at the planner's arrival times, open loop, each one outcome."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kernel.settings import Settings
from router.planner import KeyLimits, Load, Outcome, arrivals
from router.simulator import FaultConfig
from tests.router.pool import PoolKey, sim_router

MODEL = "gpt-4o-mini"
#: "plan 0" .. "plan 999" as one user message, counted as OpenAI (and the router) count it
PROMPT_TOKENS = 10
COMPLETION_TOKENS = 8


def pool_keys(pool: list[KeyLimits]) -> list[PoolKey]:
    """Keys with these limits on the router's side; the simulator enforces rpm/tpm (its buckets'
    capacity is the whole limit, as the providers')."""
    keys = []
    for i, limits in enumerate(pool):
        extra = {"rpm_burst": limits.rpm_burst, "tpm_burst": limits.tpm_burst}
        keys.append(
            PoolKey(
                f"plan{i}",
                rpm=limits.rpm,
                tpm=limits.tpm,
                extra={k: v for k, v in extra.items() if v is not None},
            )
        )
    return keys


async def real_run(
    settings: Settings,
    tmp_path: Path,
    pool: list[KeyLimits],
    load: Load,
    *,
    max_tokens: int = 8,
    latency_ms: float = 0.0,
) -> tuple[Outcome, list[float]]:
    """The outcome, and the times (from the start) the requests were really sent: a loaded
    machine sends some late, and the model replays these. Each request is ``PROMPT_TOKENS``
    of prompt, allows ``max_tokens`` and gets ``COMPLETION_TOKENS``; the simulator answers after
    an exponential latency of mean ``latency_ms``."""
    outcome = Outcome(keys=len(pool), offered=0)
    sent: list[float] = []
    times = arrivals(load)
    faults = FaultConfig(latency_jitter_ms=latency_ms, latency_distribution="exponential")
    async with sim_router(
        settings,
        tmp_path,
        pool_keys(pool),
        sim_options={"completion_tokens": COMPLETION_TOKENS},
        faults=faults,
    ) as (router, sim):

        async def one(i: int, at: float) -> None:
            counted = at >= load.warmup
            began = time.monotonic()
            answer = await router.send_one_shot(f"plan {i}", MODEL, max_tokens=max_tokens)
            # waited: till the answer came (the simulator answers at once), not only the sleeps
            # (waited_ms), so that time spent trying counts as in the model
            waited = time.monotonic() - began
            if not counted:
                return
            if answer["success"]:
                outcome.served += 1
                outcome.waits.append(waited)
            elif answer["error_type"] == "rate_limited":
                outcome.rate_limited += 1

        started = time.monotonic()
        tasks = []
        for i, at in enumerate(times):
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            outcome.offered += at >= load.warmup
            sent.append(time.monotonic() - started)
            tasks.append(asyncio.create_task(one(i, at)))
        await asyncio.gather(*tasks)
        outcome.provider_429 = int(sim.stats()["totals"]["rate_limited"])
    return outcome, sent
