"""Shared fixtures: real Redis, a real Redis Cluster and the embedded store behind one ``store``.

``all_stores`` (from tests.helpers) parametrises a test over every backend, so each behaviour is
proven the same on all three. Each test gets its own key prefix, so tests never see each other's
data. tiktoken's cache is one directory under pytest's temporary area (pytest prunes old runs), so
the tokenizer files are seeded there, never in the developer's home, and nothing is left behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LOG_FORMAT", "json")
for _name in list(os.environ):  # the tests decide which keys exist, never the developer's shell
    if (
        _name.endswith(("_API_KEY", "_API_KEYS"))
        or "_API_KEY_" in _name
        or _name.startswith("API_KEY_")
        or _name in ("REDIS_URL", "KEY_STORE_PATH")
    ):
        del os.environ[_name]

from kernel.settings import Settings  # noqa: E402
from kernel.store import Store, create_store  # noqa: E402
from tests.helpers import PoolShards  # noqa: E402
from tests.servers import RedisCluster, RedisServer, redis_cluster, redis_server  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def tiktoken_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """tiktoken's cache for this run: one directory under pytest's temporary area.

    Autouse and session-wide, so it is in place before any test (and any subprocess a test
    starts) counts tokens. A cache directory set by the developer is used as it is.
    """
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        yield Path(configured)
        return
    path = tmp_path_factory.mktemp("tiktoken", numbered=False)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path)
    try:
        yield path
    finally:
        os.environ.pop("TIKTOKEN_CACHE_DIR", None)


@pytest.fixture(scope="session")
def redis_instance() -> Iterator[RedisServer]:
    """One real redis-server for the whole session."""
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_instance: RedisServer) -> str:
    return redis_instance.url


@pytest.fixture(scope="session")
def cluster_instance() -> Iterator[RedisCluster]:
    """A real three-master Redis Cluster, started on first use."""
    with redis_cluster(3) as cluster:
        yield cluster


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def settings_for(kind: str, request: pytest.FixtureRequest, **overrides: object) -> Settings:
    """Settings pointing at the ``kind`` backend with a fresh key prefix."""
    values: dict[str, object] = {"REDIS_KEY_PREFIX": unique_prefix()}
    if PoolShards.value != 1:
        values["POOL_SHARDS"] = PoolShards.value
    if kind == "redis":
        values["REDIS_URL"] = request.getfixturevalue("redis_url")
    elif kind == "cluster":
        values["REDIS_URL"] = request.getfixturevalue("cluster_instance").url
        values["REDIS_CLUSTER"] = True
    elif kind != "embedded":
        raise ValueError(f"unknown store kind {kind!r}")
    values.update(overrides)
    return Settings.from_env({}, **values)


@pytest.fixture(autouse=True)
def pool_shards(request: pytest.FixtureRequest) -> Iterator[int]:
    """POOL_SHARDS for the test's stores, settings and engines: 1 unless the test is
    parametrised (tests.helpers.both_pool_shards)."""
    PoolShards.value = int(getattr(request, "param", 1))
    try:
        yield PoolShards.value
    finally:
        PoolShards.value = 1


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "redis"))


@pytest.fixture
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A Store on the backend named by the test's parameter (default: real Redis)."""
    kind = str(getattr(request, "param", "redis"))
    instance = create_store(settings_for(kind, request))
    try:
        yield instance
    finally:
        await instance.close()


# -- everything the tests log is scanned for secrets (issue 7) ---------------------------------


@pytest.fixture(scope="session", autouse=True)
def _logged_to_file(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[None]:
    """Every log record of the session, rendered by the product's masking pipeline, to one file
    that pytest_sessionfinish runs the secret scanner over."""
    import logging

    from kernel.log import json_formatter

    path = tmp_path_factory.mktemp("logged") / "everything.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(json_formatter())
    logging.getLogger().addHandler(handler)
    pytestconfig.stash[LOGGED_FILE] = path
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


LOGGED_FILE = pytest.StashKey["object"]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.stash.get(LOGGED_FILE, None)
    if path is None or not os.path.exists(str(path)):
        return
    from keys.scanner import scan_paths

    result = scan_paths([str(path)])
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    size = os.path.getsize(str(path))
    if result.findings:
        lines = [
            f"secret scanner: {len(result.findings)} finding(s) in what the tests logged ({path}):"
        ]
        lines += [f"  line {f.line}: {f.rule}: {f.masked}" for f in result.findings[:20]]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        reporter.write_line(f"secret scanner: nothing found in {size} bytes the tests logged")
