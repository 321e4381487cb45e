"""The blocking ``SyncKeyManager`` (no event loop in these tests) and document 003's
``manager.keys[...] = key``: it works on the facade (every process's pool, keys.json on
``save_keys()``), and raises naming the call on the async ``KeyManager`` (never silently nothing).
Real Redis; another process (a subprocess on the same key prefix) checks what every process sees."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import AllKeysExhaustedError, ConfigError, KeyNotFoundError
from kernel.settings import Settings
from keys.manager import KeyManager
from keys.models import APIKey
from keys.sync import SyncKeyManager
from tests.conftest import settings_for
from tests.keys.manager_helpers import env_name, fake_secret, write_keys

MODEL = "gemini-2.5-flash"
REPO = Path(__file__).resolve().parents[2]


def entry(key_id: str, **fields: object) -> dict[str, object]:
    return {"key_id": key_id, "provider": "gemini", "model_name": MODEL, "rpm": 60, **fields}


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    return settings_for("redis", request)


@pytest.fixture
def pool(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """keys.json with one key, and an environment with secrets for it and for flash_03."""
    path = write_keys(tmp_path / "keys.json", [entry("flash_01")])
    environ = {env_name("flash_01"): fake_secret("AIza"), env_name("flash_03"): fake_secret("AIza")}
    return path, environ


@pytest.fixture
def manager(settings: Settings, pool: tuple[Path, dict[str, str]]) -> Iterator[SyncKeyManager]:
    path, environ = pool
    made = SyncKeyManager(key_store_path=path, settings=settings, environ=environ)
    yield made
    made.close()


ANOTHER_PROCESS = """
import json, sys
from kernel.errors import AllKeysExhaustedError
from kernel.settings import Settings
from keys.sync import SyncKeyManager
path, url, prefix, environ = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
settings = Settings.from_env({}, REDIS_URL=url, REDIS_KEY_PREFIX=prefix)
with SyncKeyManager(key_store_path=path, settings=settings, environ=environ) as manager:
    try:
        picked = manager.select_key("gemini-2.5-flash", exclude=["flash_01"]).key_id
    except AllKeysExhaustedError:
        picked = None
    print(json.dumps({"ids": sorted(manager.keys), "picked": picked,
                      "rpm": manager.keys["flash_03"].rpm if "flash_03" in manager.keys else None}))
"""


def another_process(settings: Settings, pool: tuple[Path, dict[str, str]]) -> dict[str, Any]:
    """What a new process on the same Redis and key prefix sees: its key ids, the key it gets
    with flash_01 excluded (None: no room) and flash_03's rpm."""
    path, environ = pool
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            ANOTHER_PROCESS,
            str(path),
            str(settings.REDIS_URL),
            settings.REDIS_KEY_PREFIX,
            json.dumps(environ),
        ],
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def new_key(**fields: object) -> APIKey:
    """Document 003's Example 3 key."""
    data = {
        "key_id": "flash_03",
        "model_name": MODEL,
        "provider": "gemini",
        "rpm": 60,
        "tpm": 1_000_000,
        "tags": {"region": "eu-west"},
        **fields,
    }
    return APIKey.model_validate(data)


def test_the_facade_selects_reads_the_secret_and_records_without_an_event_loop(
    manager: SyncKeyManager, pool: tuple[Path, dict[str, str]]
) -> None:
    selection = manager.select_key(model_preference=MODEL, tokens_needed=100)
    assert selection.key_id == "flash_01"
    assert manager.get_secret(selection) == pool[1][env_name("flash_01")]
    assert manager.record_success(selection, actual_tokens=80) is True
    status = manager.get_key_status("flash_01")
    assert status["successes"] == 1 and status["rpm_usage"]["count"] == 1
    assert manager.get_rpm_usage("flash_01")["count"] == 1
    assert manager.get_stats()["total_keys"] == 1
    assert manager.health_check()["healthy"] is True
    assert manager.mark_key_unhealthy("flash_01", 30, "test")
    with pytest.raises(AllKeysExhaustedError):
        manager.select_key(MODEL)
    manager.clear_cooldown("flash_01")
    assert manager.select_key(MODEL).key_id == "flash_01"


def test_keys_assignment_adds_the_key_to_every_process_and_save_keys_writes_it(
    manager: SyncKeyManager,
    settings: Settings,
    pool: tuple[Path, dict[str, str]],
    tmp_path: Path,
) -> None:
    one = manager
    assert another_process(settings, pool) == {"ids": ["flash_01"], "picked": None, "rpm": None}
    one.keys["flash_03"] = new_key()  # document 003, Example 3
    assert "flash_03" in one.keys and one.keys["flash_03"].tags == {"region": "eu-west"}
    assert another_process(settings, pool) == {
        "ids": ["flash_01", "flash_03"],
        "picked": "flash_03",
        "rpm": 60,
    }
    saved = one.save_keys(tmp_path / "saved.json")
    ids = [k["key_id"] for k in json.loads(saved.read_text(encoding="utf-8"))["keys"]]
    assert ids == ["flash_01", "flash_03"]


def test_keys_assignment_replaces_a_key_of_the_same_id(
    manager: SyncKeyManager, settings: Settings, pool: tuple[Path, dict[str, str]]
) -> None:
    one = manager
    one.keys["flash_03"] = new_key()
    one.keys["flash_03"] = new_key(rpm=1, tags={"region": "us"})
    assert one.keys["flash_03"].rpm == 1
    seen = another_process(settings, pool)  # it takes the replaced key's one request
    assert seen["rpm"] == 1 and seen["picked"] == "flash_03"
    with pytest.raises(AllKeysExhaustedError):  # the replaced key's limit holds everywhere
        one.select_key(MODEL, exclude=["flash_01"])
    del one.keys["flash_03"]
    assert another_process(settings, pool)["ids"] == ["flash_01"]
    assert "flash_03" not in one.keys
    with pytest.raises(KeyNotFoundError):
        del one.keys["flash_03"]


def test_keys_assignment_of_a_wrong_value_names_the_key_id(manager: SyncKeyManager) -> None:
    one = manager
    with pytest.raises(ConfigError, match=r"field 'flash_04'.*assign it as keys\['flash_03'\]"):
        one.keys["flash_04"] = new_key()
    with pytest.raises(ConfigError, match=r"expected a keys\.models\.APIKey, got dict"):
        one.keys["flash_03"] = {"key_id": "flash_03"}  # type: ignore[assignment]
    assert "flash_03" not in one.keys and "flash_04" not in one.keys


def test_keys_assignment_on_the_async_manager_raises_naming_what_to_call(
    settings: Settings, pool: tuple[Path, dict[str, str]]
) -> None:
    path, environ = pool

    async def scenario() -> None:
        manager = KeyManager(key_store_path=path, settings=settings, environ=environ)
        await manager.start()
        try:
            with pytest.raises(ConfigError) as caught:
                manager.keys["flash_03"] = new_key()  # type: ignore[index]
            message = str(caught.value)
            assert "KeyManager.keys" in message and "'flash_03'" in message
            assert "await manager.put_key(key)" in message and "SyncKeyManager" in message
            assert "flash_03" not in manager.keys  # nothing changed, anywhere
            with pytest.raises(ConfigError, match="remove_key"):
                del manager.keys["flash_01"]  # type: ignore[attr-defined]
            assert "flash_01" in manager.keys
            await manager.put_key(new_key())  # what the message says works
            assert (await manager.select_key(MODEL, exclude=["flash_01"])).key_id == "flash_03"
        finally:
            await manager.close()

    asyncio.run(scenario())


def test_the_facade_refuses_to_run_inside_an_event_loop(manager: SyncKeyManager) -> None:
    one = manager

    async def inside() -> None:
        with pytest.raises(RuntimeError, match="await the KeyManager instead"):
            one.select_key(MODEL)

    asyncio.run(inside())


def test_the_facade_has_every_method_of_the_manager_and_each_blocks() -> None:
    from tests.keys.test_manager_surface import SURFACE

    for name in SURFACE:
        method = getattr(SyncKeyManager, name, None)
        assert callable(method), f"SyncKeyManager has no {name}"
        assert not inspect.iscoroutinefunction(method), name
