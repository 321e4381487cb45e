"""``python -m router --health-check`` as a user runs it: a subprocess in a directory of its own,
with only the environment the test gives it. Exit 0 and a JSON report when healthy; exit 1 and the
reason when not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from kernel.redis_keys import RedisKeys, shard_of
from lua.records import Learned, learned_field
from tests import keygen
from tests.conftest import unique_prefix
from tests.servers import free_port


def run_health(
    cwd: Path, env: dict[str, str] | None = None, *args: str, command: str = "--health-check"
) -> tuple[int, dict[str, Any], str]:
    """(exit code, the JSON report on stdout, stderr) of the health check run in ``cwd``."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "TIKTOKEN_CACHE_DIR": os.environ.get("TIKTOKEN_CACHE_DIR", str(cwd / "tiktoken")),
    }
    if os.environ.get("PYTHONPATH"):  # a source checkout run with PYTHONPATH: the same code
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    result = subprocess.run(
        [sys.executable, "-m", "router", command, *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document: {result.stdout!r}\nstderr: {result.stderr}")
    return result.returncode, report, result.stderr


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory outside the repository: no keys.json, no configuration."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_no_configuration_is_healthy_on_the_embedded_store(workdir: Path) -> None:
    """A fresh install with nothing configured passes (issue 2), saying how to add a key."""
    code, report, stderr = run_health(workdir)
    assert code == 0, stderr
    assert report["healthy"] is True and report["errors"] == []
    assert report["store"]["kind"] == "embedded" and report["store"]["ok"] is True
    assert report["keys"]["total"] == 0 and report["keys"]["keys_file"] is None
    assert any("no API keys configured: set OPENAI_API_KEY" in w for w in report["warnings"])
    assert report["secret_store"] == {"type": "env"}


def test_one_key_and_nothing_else_is_healthy_on_the_embedded_store(workdir: Path) -> None:
    code, report, stderr = run_health(workdir, {"OPENAI_API_KEY": keygen.openai_project_key()})
    assert code == 0, stderr
    assert report["healthy"] is True and report["errors"] == [] and report["warnings"] == []
    assert report["store"]["kind"] == "embedded" and report["store"]["ok"] is True


def test_the_health_subcommand_is_the_same(workdir: Path) -> None:
    code, report, _ = run_health(
        workdir, {"OPENAI_API_KEY": keygen.openai_project_key()}, command="health"
    )
    assert code == 0 and report["healthy"] is True


def test_one_openai_key_is_counted_and_never_printed(workdir: Path) -> None:
    secret = keygen.openai_project_key()
    code, report, stderr = run_health(workdir, {"OPENAI_API_KEY": secret})
    assert code == 0
    assert report["keys"]["total"] == 1 and report["keys"]["by_provider"] == {"openai": 1}
    assert report["keys"]["secrets_missing"] == []
    everything = json.dumps(report) + stderr
    assert secret not in everything and secret[8:30] not in everything


def test_an_unreachable_redis_is_unhealthy_with_the_reason_in_closed_mode(
    workdir: Path,
) -> None:
    port = free_port()  # nothing listens there
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "STORE_FAILURE_MODE": "closed",
        "OPENAI_API_KEY": keygen.openai_project_key(),
    }
    code, report, stderr = run_health(workdir, env)
    assert code == 1
    assert report["healthy"] is False
    assert report["store"]["kind"] == "redis" and report["store"]["ok"] is False
    (error,) = report["errors"]
    assert f"127.0.0.1:{port}" in error and "unreachable" in error
    assert stderr.strip().endswith(f"unhealthy: {error}")


def test_an_unreachable_redis_is_degraded_in_open_mode(workdir: Path) -> None:
    port = free_port()  # nothing listens there
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "ROUTER_PROCESSES": "4",
        "OPENAI_API_KEY": keygen.openai_project_key(),
    }
    code, report, stderr = run_health(workdir, env)
    assert code == 0, stderr
    assert report["healthy"] is True and report["status"] == "degraded"
    assert report["store"]["ok"] is False and report["store"]["status"] == "degraded"
    (warning,) = report["warnings"]
    assert f"127.0.0.1:{port}" in warning and "ROUTER_PROCESSES=4" in warning
    assert "degraded" in stderr


def test_the_redis_password_is_never_printed(workdir: Path) -> None:
    password = keygen.opaque_secret(24)
    env = {
        "REDIS_URL": f"redis://default:{password}@127.0.0.1:{free_port()}/0",
        "STORE_FAILURE_MODE": "closed",
    }
    code, report, stderr = run_health(workdir, env)
    assert code == 1
    assert password not in json.dumps(report) + stderr
    assert "default:***@" in report["store"]["url"]


def test_a_malformed_redis_url_is_a_configuration_error(workdir: Path) -> None:
    env = {"REDIS_URL": "localhost:6379", "OPENAI_API_KEY": keygen.openai_project_key()}
    code, report, stderr = run_health(workdir, env)
    assert code == 1
    (error,) = report["errors"]
    assert "REDIS_URL" in error and "Traceback" not in stderr


def test_a_real_redis_is_healthy(workdir: Path, redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "OPENAI_API_KEY": keygen.openai_project_key()}
    code, report, stderr = run_health(workdir, env)
    assert code == 0, stderr
    assert report["healthy"] is True
    assert report["store"]["kind"] == "redis" and report["store"]["ok"] is True
    assert report["store"]["latency_ms"] >= 0


@pytest.mark.parametrize("shards", [1, 3])
def test_the_health_check_shows_where_each_keys_limits_come_from(
    workdir: Path, redis_url: str, shards: int
) -> None:
    write_keys(
        workdir / "keys.json",
        {
            "keys": [
                {"key_id": "told", "provider": "openai", "rpm": 500},
                {"key_id": "untold", "provider": "openai"},
                {"key_id": "learnt", "provider": "openai", "rpm": 900},
            ]
        },
    )
    prefix = unique_prefix()
    learned = Learned(rpm=600, tpm=200_000, at=1_800_000_000.0).encode()
    names = RedisKeys(prefix, shards=shards)
    if shards > 1:  # the key's quota group's shard
        names = names.shard_view(shard_of("learnt", shards))
    client = redis.Redis.from_url(redis_url)
    try:  # what a settle keeps of the provider's headers (lua/settle.lua)
        client.hset(names.pool_config, learned_field("learnt|gpt-4o-mini"), learned)
    finally:
        client.close()
    env = {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix, "POOL_SHARDS": str(shards)}
    env.update({f"API_KEY_{k}": keygen.openai_project_key() for k in ("TOLD", "UNTOLD", "LEARNT")})
    code, report, stderr = run_health(workdir, env)
    assert code == 0, stderr
    limits = report["limits"]
    assert limits["told"]["source"] == "configured" and not limits["told"]["learning"]
    assert limits["untold"]["source"] == "none" and limits["untold"]["learning"]
    assert limits["learnt"]["source"] == "both"
    assert limits["learnt"]["rpm"] == {
        "limit": 600,
        "source": "both",
        "configured": 900,
        "learned": 600,
    }
    assert limits["learnt"]["tpm"]["source"] == "learned"


def write_keys(path: Path, entries: Any) -> Path:
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


BAD_ENTRY = {
    "key_id": "flash_01",
    "model_name": "gemini-2.5-flash",
    "provider": "gemini",
    "rpm": -5,
}


@pytest.mark.parametrize("how", ["working-directory", "--keys", "KEY_STORE_PATH"])
def test_a_malformed_keys_json_is_unhealthy_naming_the_place(workdir: Path, how: str) -> None:
    name = "keys.json" if how == "working-directory" else "pool.json"
    path = write_keys(workdir / name, {"keys": [BAD_ENTRY]})
    args: tuple[str, ...] = ("--keys", str(path)) if how == "--keys" else ()
    env = {"KEY_STORE_PATH": str(path)} if how == "KEY_STORE_PATH" else {}
    code, report, stderr = run_health(workdir, env, *args)
    assert code == 1
    (error,) = report["errors"]
    assert name in error and "entry 'flash_01'" in error and "field 'rpm'" in error
    assert error in stderr
    assert "Traceback" not in stderr


def test_bad_json_is_unhealthy_naming_line_and_column(workdir: Path) -> None:
    (workdir / "keys.json").write_text('{"keys": [}', encoding="utf-8")
    code, report, _ = run_health(workdir)
    assert code == 1
    assert "keys.json: invalid JSON at line 1 column" in report["errors"][0]


def test_a_bad_setting_is_unhealthy_naming_the_variable(workdir: Path) -> None:
    code, report, _ = run_health(workdir, {"USER_RPM_DEFAULT": "plenty"})
    assert code == 1
    assert "field 'USER_RPM_DEFAULT'" in report["errors"][0]


def test_keys_without_secrets_are_reported_but_healthy(workdir: Path) -> None:
    good = {**BAD_ENTRY, "rpm": 10}
    other = {**good, "key_id": "flash_02"}
    write_keys(workdir / "keys.json", {"keys": [good, other]})
    secret = keygen.gemini_key()
    code, report, _ = run_health(workdir, {"GEMINI_KEY_flash_02": secret})
    assert code == 0
    assert report["keys"]["total"] == 2 and report["keys"]["keys_file"] == "keys.json"
    assert report["keys"]["secrets_missing"] == ["flash_01"]
    assert any("1 active key(s) have no secret" in w for w in report["warnings"])
    assert secret not in json.dumps(report)


def test_no_key_with_a_secret_is_unhealthy(workdir: Path) -> None:
    good = {**BAD_ENTRY, "rpm": 10}
    write_keys(workdir / "keys.json", {"keys": [good, {**good, "key_id": "flash_02"}]})
    code, report, _ = run_health(workdir)
    assert code == 1 and report["healthy"] is False
    assert report["errors"] == ["no active key has a secret (missing: flash_01, flash_02)"]


def test_only_inactive_keys_is_unhealthy(workdir: Path) -> None:
    write_keys(workdir / "keys.json", {"keys": [{**BAD_ENTRY, "rpm": 10, "active": False}]})
    code, report, _ = run_health(workdir, {"GEMINI_KEY_flash_01": keygen.gemini_key()})
    assert code == 1 and report["healthy"] is False
    assert report["errors"] == ["no active API keys: all 1 configured key(s) are inactive"]


def test_single_key_mode_ignores_keys_json(workdir: Path) -> None:
    write_keys(workdir / "keys.json", {"keys": [BAD_ENTRY]})  # would fail if it were read
    env = {"ENABLE_KEY_ROTATION": "false", "GEMINI_API_KEY": keygen.gemini_key()}
    code, report, _ = run_health(workdir, env)
    assert code == 0
    assert report["keys"]["total"] == 1 and report["keys"]["keys_file"] is None
    assert any("single-key mode" in w for w in report["warnings"])
