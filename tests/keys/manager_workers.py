"""Code run in another OS process by the KeyManager tests."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from kernel.settings import Settings
from keys.manager import KeyManager


async def _cool_down(url: str, prefix: str, key_id: str, seconds: float) -> None:
    settings = Settings.from_env({}, REDIS_URL=url, REDIS_KEY_PREFIX=prefix)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keys.json"
        path.write_text(
            json.dumps(
                {
                    "keys": [
                        {"key_id": k, "model_name": "gpt-4o", "provider": "openai", "rpm": 1000}
                        for k in ("a", "b")
                    ]
                }
            )
        )
        manager = KeyManager(key_store_path=path, settings=settings, environ={})
        await manager.mark_key_unhealthy(key_id, seconds, reason="set by another process")
        await manager.close()


def cool_down_key(url: str, prefix: str, key_id: str, seconds: float) -> None:
    asyncio.run(_cool_down(url, prefix, key_id, seconds))
