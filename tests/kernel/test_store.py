from __future__ import annotations

import hashlib

import pytest

import lua
from kernel.errors import ConfigError, StoreError
from kernel.settings import Settings
from kernel.store import Store, create_store, mask_url
from tests.helpers import all_stores


@all_stores
async def test_store_pings_and_reports_its_kind(store: Store) -> None:
    assert await store.ping() >= 0
    assert store.describe()["kind"] == store.kind


@all_stores
async def test_script_runs_and_reloads_after_script_flush(store: Store) -> None:
    source = "return ARGV[1]"
    script = lua.Script(name="echo", source=source, sha=hashlib.sha1(source.encode()).hexdigest())  # noqa: S324
    key = store.keys.pool_config
    assert await store.run(script, [key], ["hello"]) == "hello"
    await store.client.script_flush()
    assert await store.run(script, [key], ["again"]) == "again"


async def test_server_time_comes_from_the_store(store: Store) -> None:
    import time

    assert abs(await store.server_time() - time.time()) < 5


async def test_unreachable_redis_is_a_store_error() -> None:
    from tests.servers import free_port

    settings = Settings.from_env(
        {}, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT_SECONDS=0.5
    )
    store = create_store(settings)
    with pytest.raises(StoreError, match="unreachable"):
        await store.ping()
    await store.close()


def test_password_never_shown() -> None:
    assert mask_url("redis://:hunter2@host:6379/0") == "redis://:***@host:6379/0"
    assert mask_url("redis://user:hunter2@host/0") == "redis://user:***@host/0"
    assert "hunter2" not in str(
        create_store(Settings.from_env({}, REDIS_URL="redis://:hunter2@localhost:1/0")).describe()
    )


def test_bad_redis_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        create_store(Settings.from_env({}, REDIS_URL="nonsense://x"))


def test_embedded_store_is_shared_within_the_process() -> None:
    a = create_store(Settings.from_env({}))
    b = create_store(Settings.from_env({}))
    assert a.kind == b.kind == "embedded"
    assert a.client.server is b.client.server
