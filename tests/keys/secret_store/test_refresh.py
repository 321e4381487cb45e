"""Cache and live refresh: rotation under load, failed refreshes, change callbacks, the loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kernel.errors import SecretStoreError
from kernel.settings import Settings
from keys.models import APIKey
from keys.secret_store import SecretChanges, SecretStore, create_secret_store
from tests.keys.secret_store import canaries
from tests.keys.secret_store.conftest import VaultFixture, infisical_settings
from tests.keys.secret_store.infisical_fake import InfisicalFake


def key(key_id: str, **extra: object) -> APIKey:
    return APIKey.model_validate(
        {"key_id": key_id, "provider": "openai", "model_name": "gpt-4o", **extra}
    )


def secret_reads(fake: InfisicalFake) -> int:
    return sum(1 for path in fake.calls if path.startswith("/api/v3/secrets/raw/"))


async def test_cache_serves_from_memory_and_cold_reads_coalesce(infisical: InfisicalFake) -> None:
    infisical.put("/", "k1", canaries.openai_key())
    store = create_secret_store(infisical_settings(infisical))
    try:
        results = await asyncio.gather(*(store.get_secret(key("k1")) for _ in range(20)))
        assert len(set(results)) == 1
        for _ in range(50):
            await store.get_secret(key("k1"))
        assert secret_reads(infisical) == 1
        # A different secret_ref for the same key id is a different secret: read again.
        infisical.put("/other", "k1", canaries.openai_key())
        moved = await store.get_secret(key("k1", secret_ref="/other/k1"))
        assert moved == infisical.folders["/other"]["k1"] and secret_reads(infisical) == 2
    finally:
        await store.close()


async def test_missing_secret_is_remembered_until_the_next_refresh(
    infisical: InfisicalFake,
) -> None:
    store = create_secret_store(infisical_settings(infisical))
    try:
        for _ in range(5):
            with pytest.raises(SecretStoreError):
                await store.get_secret(key("late"))
        assert secret_reads(infisical) == 1
        infisical.put("/", "late", canaries.openai_key())
        changes = await store.refresh()
        assert changes.added == {"late"}
        assert await store.get_secret(key("late")) == infisical.folders["/"]["late"]
    finally:
        await store.close()


async def test_rotation_under_load_serves_every_request(vault: VaultFixture) -> None:
    """Workers read the secret while it is rotated in Vault and the store refreshes: no read
    fails, and every read after the refresh returns the new secret."""
    settings = vault.settings()
    path = f"{settings.VAULT_SECRET_PATH}/gpt-1"
    old, new = canaries.openai_key(), canaries.openai_key()
    vault.put(path, api_key=old)
    store = create_secret_store(settings)
    the_key = key("gpt-1")
    seen: list[tuple[int, str]] = []  # (refresh generation, value)
    failures: list[BaseException] = []
    generation = 0
    stop = asyncio.Event()
    reached = asyncio.Event()
    target = 0

    async def worker() -> None:
        for _ in range(20_000):  # bounded
            if stop.is_set():
                return
            try:
                seen.append((generation, await store.get_secret(the_key)))
            except SecretStoreError as exc:
                failures.append(exc)
            if len(seen) >= target:
                reached.set()
            await asyncio.sleep(0)

    async def reads_reach(count: int) -> None:
        nonlocal target
        target = count
        reached.clear()
        if len(seen) < count:
            async with asyncio.timeout(30):
                await reached.wait()

    try:
        workers = [asyncio.create_task(worker()) for _ in range(8)]
        await reads_reach(200)
        await asyncio.to_thread(vault.put, path, api_key=new)
        refresh = asyncio.create_task(store.refresh())
        await reads_reach(len(seen) + 50)  # requests keep being served during the refresh
        changes = await refresh
        generation = 1
        mark = len(seen)
        await reads_reach(mark + 400)
        stop.set()
        await asyncio.gather(*workers)
    finally:
        stop.set()
        await store.close()
    assert failures == []
    assert changes == SecretChanges(changed=frozenset({"gpt-1"}))
    assert {value for gen, value in seen if gen == 0} <= {old, new}
    assert old in {value for _, value in seen[:200]}
    assert {value for gen, value in seen if gen == 1} == {new}


async def test_failed_refresh_keeps_last_good_and_warns(
    infisical: InfisicalFake, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = canaries.openai_key(), canaries.openai_key()
    infisical.put("/", "k1", first)
    store = create_secret_store(infisical_settings(infisical))
    try:
        assert await store.get_secret(key("k1")) == first
        infisical.outage = True
        infisical.put("/", "k1", second)
        changes = await store.refresh()
        assert not changes
        assert store.last_refresh_ok is False
        assert await store.get_secret(key("k1")) == first  # still serving the last good secret
        warnings = [r for r in caplog.records if "secret_refresh_failed" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
        assert "unreachable" in warnings[0].getMessage()
        health = await store.health_check()
        assert health["last_refresh_ok"] is False and health["ok"] is False
        infisical.outage = False
        assert (await store.refresh()).changed == {"k1"}
        assert await store.get_secret(key("k1")) == second
        assert store.last_refresh_ok is True
    finally:
        await store.close()


async def test_callbacks_report_added_changed_removed() -> None:
    a1, a2, b, c, p1, p2, p3 = (canaries.gemini_key() for _ in range(7))
    environ = {"API_KEY_A": a1, "API_KEY_B": b, "POOL_1": p1, "POOL_2": p2}
    store = create_secret_store(Settings.from_env({}), environ)
    received: list[SecretChanges] = []
    async_received: list[SecretChanges] = []

    async def async_callback(changes: SecretChanges) -> None:
        async_received.append(changes)

    def broken(_changes: SecretChanges) -> None:
        raise RuntimeError("a subscriber bug must not stop the others")

    store.subscribe(broken)
    store.subscribe(received.append)
    store.subscribe(async_callback)
    for key_id in ("a", "b"):
        await store.get_secret(key(key_id))
    with pytest.raises(SecretStoreError):
        await store.get_secret(key("c"))
    found = await store.watch("POOL_", lambda name: f"pool-{name}")
    assert found == {"pool-1": "1", "pool-2": "2"}
    assert not await store.refresh()
    assert received == []  # nothing changed, nobody called

    environ.update(API_KEY_A=a2, API_KEY_C=c, POOL_3=p3)
    del environ["API_KEY_B"]
    del environ["POOL_1"]
    changes = await store.refresh()
    assert changes.added == {"c", "pool-3"}
    assert changes.changed == {"a"}
    assert changes.removed == {"b", "pool-1"}
    assert received == [changes] and async_received == [changes]
    assert await store.get_secret(key("a")) == a2
    assert await store.get_secret(key("pool-3", secret_ref="env:POOL_3")) == p3
    with pytest.raises(SecretStoreError):
        await store.get_secret(key("b"))


async def test_forgotten_keys_are_not_refreshed(infisical: InfisicalFake) -> None:
    infisical.put("/", "k1", canaries.openai_key())
    store = create_secret_store(infisical_settings(infisical))
    try:
        await store.get_secret(key("k1"))
        store.forget("k1")
        before = secret_reads(infisical)
        await store.refresh()
        assert secret_reads(infisical) == before
    finally:
        await store.close()


async def test_background_refresh_runs_until_closed() -> None:
    environ = {"API_KEY_K1": canaries.gemini_key()}
    store = SecretStore(
        create_secret_store(Settings.from_env({}), environ).impl,
        refresh_interval=0.02,
        environ=environ,
    )
    seen: list[SecretChanges] = []
    changed = asyncio.Event()
    store.subscribe(seen.append)
    store.subscribe(lambda _changes: changed.set())
    await store.get_secret(key("k1"))
    await store.start()
    await store.start()  # idempotent
    environ["API_KEY_K1"] = canaries.gemini_key()
    async with asyncio.timeout(10):
        await changed.wait()
    assert seen[0].changed == {"k1"}
    await store.close()
    refreshed_at: Any = store.last_refresh
    # the scenario: five refresh intervals pass with nothing to wait for, as a live loop would
    # have refreshed in them
    await asyncio.sleep(0.1)
    assert store.last_refresh == refreshed_at  # the loop is gone


def test_refresh_interval_default_is_five_minutes() -> None:
    store = create_secret_store(Settings.from_env({}))
    assert store.refresh_interval == 300.0
    assert (
        create_secret_store(Settings.from_env({"SECRET_REFRESH_INTERVAL": "30"})).refresh_interval
        == 30.0
    )
