"""Building KeyManagers for tests: keys.json in a temp dir, secrets in an injected environment."""

from __future__ import annotations

import json
import re
import secrets as pysecrets
from pathlib import Path
from typing import Any

from kernel.settings import Settings
from keys.manager import KeyManager
from tests.keys.engine_helpers import ManualClock


def fake_secret(prefix: str = "sk-test-") -> str:
    """A key-shaped value made at run time (nothing key-like is committed)."""
    return prefix + pysecrets.token_urlsafe(24)


def env_name(key_id: str) -> str:
    return "API_KEY_" + re.sub(r"[^A-Z0-9]", "_", key_id.upper())


def write_keys(path: Path, keys: list[dict[str, Any]], **extra: Any) -> Path:
    path.write_text(json.dumps({"keys": keys, **extra}))
    return path


def manager_for(
    settings: Settings,
    tmp_path: Path,
    keys: list[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
    clock: ManualClock | None = None,
) -> tuple[KeyManager, dict[str, str]]:
    """A manager over ``keys`` (written to keys.json) with a secret for every key in ``env``."""
    environ = dict(env or {})
    path = None
    if keys is not None:
        path = write_keys(tmp_path / "keys.json", keys)
        for entry in keys:
            environ.setdefault(env_name(entry["key_id"]), fake_secret())
    manager = KeyManager(key_store_path=path, settings=settings, environ=environ, clock=clock)
    return manager, environ
