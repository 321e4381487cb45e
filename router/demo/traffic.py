"""Traffic for the demo: chat completions through the official OpenAI SDK at a steady rate.

Requests are sent on schedule (open loop), whether or not earlier ones have finished, the way many
independent clients would; the SDK's own retries are off so every answer is counted as it came.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from router.demo.pool import MODEL

PROMPTS = (
    "Summarise why API keys have rate limits.",
    "Name one way to share a key pool safely.",
    "What does a 429 status code mean?",
    "Give a haiku about token buckets.",
    "Explain a fallback model in one line.",
)
#: Requests in flight at most; beyond it the client waits (it never floods the machine).
MAX_IN_FLIGHT = 256


@dataclass
class Tally:
    """What the clients saw, counted as answers arrive."""

    sent: int = 0
    served: int = 0
    refused: int = 0  # the gateway's own 429: no room in the pool (no provider call was made)
    failed: Counter[str] = field(default_factory=Counter)
    tokens: int = 0
    rotated: int = 0  # answers that needed more than one attempt
    fallbacks: int = 0  # answers served by another model than the one asked for
    by_model: Counter[str] = field(default_factory=Counter)
    retry_after: list[float] = field(default_factory=list)
    #: Seconds from the first request to each answer that served.
    served_at: list[float] = field(default_factory=list)
    started: float = 0.0

    @property
    def in_flight(self) -> int:
        return self.sent - self.served - self.refused - sum(self.failed.values())


async def _one(client: Any, index: int, tally: Tally) -> None:
    import openai

    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=[{"role": "user", "content": PROMPTS[index % len(PROMPTS)]}],
            max_tokens=64,
        )
    except openai.RateLimitError as exc:
        tally.refused += 1
        after = exc.response.headers.get("retry-after")
        if after:
            tally.retry_after.append(float(after))
        return
    except openai.APIStatusError as exc:
        tally.failed[f"HTTP {exc.status_code}"] += 1
        return
    except openai.APIError as exc:
        tally.failed[type(exc).__name__] += 1
        return
    completion = raw.parse()
    tally.served += 1
    tally.served_at.append(time.monotonic() - tally.started)
    tally.by_model[completion.model] += 1
    if completion.usage is not None:
        tally.tokens += completion.usage.total_tokens
    if int(raw.headers.get("x-router-attempts") or 1) > 1:
        tally.rotated += 1
    if completion.model != MODEL:
        tally.fallbacks += 1


async def drive(client: Any, rate: float, seconds: float, tally: Tally) -> None:
    """Send ``rate`` requests per second for ``seconds``, then wait for the last answers."""
    # the SDK's and the gateway's first request is slow (connections, imports): not on the clock
    await client.models.list()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int) -> None:
        try:
            await _one(client, index, tally)
        finally:
            slots.release()

    started = tally.started = time.monotonic()
    index = 0
    while True:
        due = started + index / rate
        if due - started >= seconds:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await slots.acquire()
        tally.sent += 1
        task = asyncio.create_task(one(index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        index += 1
    if tasks:
        await asyncio.gather(*tasks)
