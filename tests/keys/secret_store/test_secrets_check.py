"""``python -m router secrets check``: found / missing / error per key, never a value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.keys.secret_store import canaries
from tests.keys.secret_store.conftest import VaultFixture

REPO = Path(__file__).resolve().parents[3]


def gemini_entry(key_id: str, active: bool = True) -> dict[str, object]:
    return {
        "key_id": key_id,
        "model_name": "gemini-2.5-flash",
        "provider": "gemini",
        "active": active,
    }


def run_check(cwd: Path, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    base.update(PYTHONPATH=str(REPO), LOG_FORMAT="json")
    base.update(environ)
    return subprocess.run(
        [sys.executable, "-m", "router", "secrets", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=base,
        check=False,
    )


def test_env_keys_found_missing_and_inactive(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text(
        json.dumps(
            {
                "keys": [
                    gemini_entry("flash_01"),
                    gemini_entry("flash_02", active=False),
                    gemini_entry("flash_03"),
                ]
            }
        )
    )
    present, single = canaries.gemini_key(), canaries.openai_key()
    environ = {"GEMINI_KEY_flash_01": present, "OPENAI_API_KEY": single}
    missing = run_check(tmp_path, environ)
    assert missing.returncode == 1, missing.stderr
    lines = {line.split()[0]: line for line in missing.stdout.splitlines() if line.strip()}
    assert " found " in lines["flash_01"] and "GEMINI_KEY_flash_01" in lines["flash_01"]
    assert " missing " in lines["flash_02"] and " no " in lines["flash_02"]
    assert " missing " in lines["flash_03"] and "API_KEY_FLASH_03" in lines["flash_03"]
    assert any(key_id.startswith("openai-") for key_id in lines)  # from OPENAI_API_KEY
    assert canaries.leaked_in(missing.stdout + missing.stderr) == []

    environ["API_KEY_FLASH_03"] = canaries.gemini_key()
    complete = run_check(tmp_path, environ, "--json")
    assert complete.returncode == 0, complete.stdout  # flash_02 is inactive: not required
    report = json.loads(complete.stdout)
    assert report["ok"] is True and report["backend"] == "env"
    assert {k["key_id"]: k["status"] for k in report["keys"]}["flash_03"] == "found"
    assert canaries.leaked_in(complete.stdout + complete.stderr) == []

    only = run_check(tmp_path, environ, "--key", "flash_02", "--json")
    assert [k["key_id"] for k in json.loads(only.stdout)["keys"]] == ["flash_02"]


@pytest.mark.integration
def test_vault_backend_and_denied_token(tmp_path: Path, vault: VaultFixture) -> None:
    settings = vault.settings()
    vault.put(f"{settings.VAULT_SECRET_PATH}/flash_01", value=canaries.gemini_key())
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [gemini_entry("flash_01")]}))
    environ = {
        "SECRET_STORE_TYPE": "vault",
        "VAULT_ADDR": vault.url,
        "VAULT_TOKEN": vault.root_token,
        "VAULT_SECRET_PATH": settings.VAULT_SECRET_PATH,
    }
    ok = run_check(tmp_path, environ, "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (entry,) = json.loads(ok.stdout)["keys"]
    assert (
        entry["backend"] == "vault"
        and entry["location"] == f"{settings.VAULT_SECRET_PATH}/flash_01"
    )
    denied = run_check(tmp_path, {**environ, "VAULT_TOKEN": vault.weak_token})
    assert denied.returncode == 1
    assert " error " in denied.stdout and "denied" in denied.stdout
    assert vault.weak_token not in denied.stdout + denied.stderr
    assert vault.root_token not in ok.stdout + ok.stderr


def test_sources_are_listed_from_the_file_store(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(
        json.dumps(
            {"openai-keys": {"KEY_1": canaries.openai_key(), "KEY_2": canaries.openai_key()}}
        )
    )
    secrets_file.chmod(0o600)
    (tmp_path / "keys.json").write_text(
        json.dumps(
            {
                "keys": [],
                "sources": [
                    {"path": "/openai-keys", "provider": "openai"},
                    {"path": "/empty", "provider": "gemini"},
                ],
            }
        )
    )
    environ = {"SECRET_STORE_TYPE": "file", "SECRETS_FILE": str(secrets_file)}
    result = run_check(tmp_path, environ, "--json")
    report = json.loads(result.stdout)
    first, second = report["sources"]
    assert first["ok"] is True and first["key_ids"] == ["openai-keys.KEY_1", "openai-keys.KEY_2"]
    assert second["ok"] is False and second["cause"] == "not_found"
    assert result.returncode == 1
    assert canaries.leaked_in(result.stdout + result.stderr) == []


def test_configuration_errors_exit_2(tmp_path: Path) -> None:
    result = run_check(tmp_path, {"SECRET_STORE_TYPE": "vault"})
    assert result.returncode == 2 and "VAULT_ADDR" in result.stderr
