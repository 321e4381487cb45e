"""A router process that answers its calls and is then killed with their settles still queued
(spawned by tests/router/test_deferred_settle.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from kernel.settings import Settings
from keys.manager import KeyManager
from router.request_router import RequestRouter


async def _answer_then_hang(spec: dict[str, Any], report: Any) -> None:
    settings = Settings.from_env({}, **spec["settings"])
    manager = KeyManager(key_store_path=spec["keys_path"], settings=settings, environ=spec["env"])
    router = RequestRouter(manager, settings=settings)
    await router.start()
    await router.send_one_shot("warm", spec["model"], max_tokens=8)  # a key's first is awaited
    answers = await asyncio.gather(
        *(
            router.send_one_shot(f"hi {i}", spec["model"], max_tokens=spec["max_tokens"])
            for i in range(spec["calls"])
        )
    )
    report.put({"success": [a["success"] for a in answers], "queued": manager.settles.pending})
    await asyncio.Event().wait()  # SIGKILLed here, its settles still queued


def answer_then_hang(spec: dict[str, Any], report: Any) -> None:
    """Make ``spec["calls"]`` calls at once, report their answers, then wait to be killed."""
    asyncio.run(_answer_then_hang(spec, report))
