"""One router process of the chaos soak (tests/test_chaos.py), started with ``spawn``.

It builds a RequestRouter on the shared Redis, says it is ready, waits for the common start, then
offers load at a fixed rate for a fixed time: one-shot calls, streams, and turns of a few
conversations (each conversation's turns one after another, some of them streamed). Process 0
also runs the one long stream. Every answer is recorded, never an exception: one that escapes a
call is counted as ``escaped:<type>``, which the test refuses.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kernel.settings import Settings
from keys.manager import KeyManager
from router.request_router import RequestRouter

#: Error types an answer should not have under the soak's faults (degraded mode serves instead).
UNEXPECTED = frozenset({"store_unavailable", "no_error_type"})


@dataclass
class _Recorder:
    outcomes: Counter[str] = field(default_factory=Counter)
    degraded: int = 0
    turns: list[dict[str, Any]] = field(default_factory=list)
    escaped: list[str] = field(default_factory=list)
    long_stream: dict[str, Any] | None = None
    #: the first few messages of each error type no outage should produce (for the report)
    unexpected: list[str] = field(default_factory=list)

    def answer(self, answer: dict[str, Any]) -> None:
        if answer.get("success"):
            self.outcomes["success"] += 1
        else:
            error_type = str(answer.get("error_type") or "no_error_type")
            self.outcomes[error_type] += 1
            if error_type in UNEXPECTED and len(self.unexpected) < 5:
                self.unexpected.append(f"{error_type}: {answer.get('error')}")
        self.degraded += bool(answer.get("degraded"))

    def escape(self, exc: BaseException) -> None:
        self.outcomes[f"escaped:{type(exc).__name__}"] += 1
        self.escaped.append("".join(traceback.format_exception(exc))[-2000:])


async def _streamed(events: Any) -> dict[str, Any]:
    """The final answer of a stream (its ``done`` event)."""
    async for event in events:
        if event["type"] == "done":
            return dict(event)
    raise AssertionError("a stream ended without its done event")


class _Load:
    def __init__(self, router: RequestRouter, config: dict[str, Any], index: int) -> None:
        self.router = router
        self.config = config
        self.index = index
        self.rec = _Recorder()
        self.locks = [asyncio.Lock() for _ in range(config["conversations"])]
        self.turn_count = 0

    async def _guard(self, call: Any) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = await call
        except Exception as exc:  # the soak's point: nothing escapes
            self.rec.escape(exc)
            return None
        self.rec.answer(answer)
        return answer

    async def one_shot(self, i: int) -> None:
        model, tokens = self.config["model"], self.config["max_tokens"]
        if i % 5 == 0:
            events = self.router.stream_one_shot(f"soak stream {i}", model, max_tokens=tokens)
            await self._guard(_streamed(events))
        else:
            await self._guard(self.router.send_one_shot(f"soak {i}", model, max_tokens=tokens))

    async def turn(self, i: int) -> None:
        slot = self.turn_count % len(self.locks)
        self.turn_count += 1
        conv_id = f"soak-p{self.index}-c{slot}"
        async with self.locks[slot]:
            request_id = f"p{self.index}t{i}"
            prompt = f"turn {request_id} of {conv_id}"
            options = {"max_tokens": self.config["max_tokens"], "request_id": request_id}
            model = self.config["model"]
            if i % 3 == 0:
                call = _streamed(self.router.stream_chat(conv_id, prompt, model, **options))
            else:
                call = self.router.send_chat(conv_id, prompt, model, **options)
            answer = await self._guard(call)
        self.rec.turns.append(
            {
                "conv_id": conv_id,
                "request_id": request_id,
                "success": bool(answer and answer.get("success")),
                "saved": None if answer is None else answer.get("conversation_saved"),
                "answer_request_id": None if answer is None else answer.get("request_id"),
            }
        )

    async def long_stream(self) -> None:
        model, tokens = self.config["long_model"], self.config["max_tokens"]
        started = time.monotonic()
        answer = await self._guard(
            _streamed(self.router.stream_one_shot("the long one", model, max_tokens=tokens))
        )
        self.rec.long_stream = {
            "answer": answer,
            "seconds": time.monotonic() - started,
        }

    async def run(self) -> int:
        """Offer the load; answers how many calls were offered."""
        tasks = []
        rate, seconds = self.config["rate"], self.config["seconds"]
        started = time.monotonic()
        i = 0
        if self.index == 0:
            tasks.append(asyncio.create_task(self.long_stream()))
        while time.monotonic() - started < seconds:
            kind = i % 10
            work = self.turn(i) if kind in (1, 4, 7) else self.one_shot(i)
            tasks.append(asyncio.create_task(work))
            i += 1
            # the scenario: calls arrive at a fixed rate (open loop), whatever they take
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        await asyncio.gather(*tasks)
        return i + (1 if self.index == 0 else 0)


async def _soak(config: dict[str, Any], index: int, queue: Any, start: Any) -> dict[str, Any]:
    settings = Settings.from_env({}, **config["settings"])
    manager = KeyManager(
        key_store_path=config["keys_path"], settings=settings, environ=config["env"]
    )
    router = RequestRouter(manager, settings=settings)
    await router.start()
    try:
        queue.put(("ready", index))
        if not await asyncio.to_thread(start.wait, config["start_timeout"]):
            raise RuntimeError("the soak never started")
        load = _Load(router, config, index)
        offered = await load.run()
    finally:
        await router.close()
    rec = load.rec
    return {
        "index": index,
        "offered": offered,
        "outcomes": dict(rec.outcomes),
        "degraded": rec.degraded,
        "turns": rec.turns,
        "escaped": rec.escaped[:5],
        "unexpected": rec.unexpected,
        "long_stream": rec.long_stream,
    }


def soak_worker(config: dict[str, Any], index: int, queue: Any, start: Any) -> None:
    """Process entry point: the result (or the error that ended the process) goes to ``queue``."""
    try:
        result = asyncio.run(_soak(config, index, queue, start))
    except BaseException as exc:
        queue.put(("error", index, "".join(traceback.format_exception(exc))[-4000:]))
        raise
    queue.put(("result", index, result))
