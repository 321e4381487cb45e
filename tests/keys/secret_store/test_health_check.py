"""``python -m router --health-check`` checks the configured secret store and the ``sources`` it
discovers keys from, as the gateway's ``/health/ready`` does: a container probe fails (exit 1, a
line naming the store and the error, nothing secret printed) when the keys cannot be read.

Real stores: an OpenBao server of its own (stopped mid-test), a listener that never accepts, and
the file store for ``sources``."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.keys.secret_store import canaries
from tests.keys.secret_store.conftest import VaultFixture
from tests.keys.secret_store.servers import openbao_dev_server
from tests.router.test_cli_health import run_health
from tests.servers import blackhole_listener, free_port

pytestmark = pytest.mark.integration


def keys_json(folder: Path, *key_ids: str, sources: list[dict[str, str]] | None = None) -> None:
    keys = [{"key_id": k, "provider": "gemini", "model_name": "gemini-2.5-flash"} for k in key_ids]
    document: dict[str, object] = {"keys": keys}
    if sources is not None:
        document["sources"] = sources
    (folder / "keys.json").write_text(json.dumps(document), encoding="utf-8")


def vault_env(addr: str, token: str, path: str = "secret/llm/health") -> dict[str, str]:
    return {
        "SECRET_STORE_TYPE": "vault",
        "VAULT_ADDR": addr,
        "VAULT_TOKEN": token,
        "VAULT_SECRET_PATH": path,
        "SECRET_STORE_TIMEOUT_SECONDS": "2",
    }


def test_a_vault_that_stops_fails_the_probe_naming_the_store(tmp_path: Path) -> None:
    keys_json(tmp_path, "flash_01")
    with openbao_dev_server() as server:
        fixture = VaultFixture(server, "", "", "")
        secret = canaries.gemini_key()
        fixture.put("secret/llm/health/flash_01", value=secret)
        env = vault_env(server.url, server.root_token)
        code, report, err = run_health(tmp_path, env)
        assert code == 0, err
        assert report["secret_store"] == {
            "type": "vault",
            "backend": "vault",
            "ok": True,
            "sources": [],
        }
        assert report["keys"]["secrets_missing"] == []
        server.server.stop()  # the store goes down
        code, report, err = run_health(tmp_path, env)
    assert code == 1
    assert report["healthy"] is False and report["status"] == "unhealthy"
    assert report["secret_store"]["ok"] is False
    line = next(line for line in err.splitlines() if line.startswith("unhealthy: "))
    assert "secret store vault: " in line and "unreachable" in line
    for text in (json.dumps(report), err):
        assert server.root_token not in text and secret not in text
        assert canaries.leaked_in(text) == []


def test_a_vault_that_never_answers_fails_the_probe_within_its_timeout(tmp_path: Path) -> None:
    keys_json(tmp_path, "flash_01")
    token = "hvs." + canaries.opaque_secret()
    with blackhole_listener() as hole:
        # the subprocess's own cap (120 s) fails the test if the check hangs
        code, report, err = run_health(tmp_path, vault_env(f"http://127.0.0.1:{hole.port}", token))
    assert code == 1, err
    assert "secret store vault: " in err
    assert report["secret_store"]["ok"] is False
    assert token not in err + json.dumps(report)


def test_a_vault_without_the_keys_secrets_fails_the_probe(
    tmp_path: Path, vault: VaultFixture
) -> None:
    keys_json(tmp_path, "flash_01", "flash_02")
    path = f"secret/llm/{tmp_path.name[-8:]}"
    vault.put(f"{path}/flash_01", value=canaries.gemini_key())
    env = vault_env(vault.url, vault.root_token, path)
    code, report, err = run_health(tmp_path, env)
    assert code == 0, err  # one of two: healthy, with a warning
    assert report["keys"]["secrets_missing"] == ["flash_02"]
    assert any("1 active key(s) have no secret" in w for w in report["warnings"])
    keys_json(tmp_path, "flash_02", "flash_03")
    code, report, err = run_health(tmp_path, env)
    assert code == 1
    assert "no active key has a secret (missing: flash_02, flash_03)" in err


def test_a_vault_that_refuses_the_token_fails_the_probe(
    tmp_path: Path, vault: VaultFixture
) -> None:
    keys_json(tmp_path, "flash_01")
    bad = "hvs." + canaries.opaque_secret()
    code, report, err = run_health(tmp_path, vault_env(vault.url, bad))
    assert code == 1
    assert "secret store vault: " in err and report["secret_store"]["ok"] is False
    assert bad not in err + json.dumps(report)


def test_sources_are_listed_and_one_that_cannot_be_read_fails_the_probe(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(
        json.dumps(
            {"openai-keys": {"KEY_1": canaries.openai_key(), "KEY_2": canaries.openai_key()}}
        ),
        encoding="utf-8",
    )
    secrets_file.chmod(0o600)
    sources = [{"path": "/openai-keys", "provider": "openai"}]
    keys_json(tmp_path, sources=sources)
    env = {"SECRET_STORE_TYPE": "file", "SECRETS_FILE": str(secrets_file)}
    code, report, err = run_health(tmp_path, env)
    assert code == 0, err
    assert report["secret_store"]["sources"] == [
        {"path": "/openai-keys", "provider": "openai", "ok": True, "keys": 2}
    ]
    secrets_file.write_text("{not json", encoding="utf-8")  # the store cannot be read now
    code, report, err = run_health(tmp_path, env)
    assert code == 1
    assert "secret store file: " in err
    assert canaries.leaked_in(err + json.dumps(report)) == []


def test_the_env_store_alone_is_not_checked_again(tmp_path: Path) -> None:
    keys_json(tmp_path, "flash_01")
    env = {
        "API_KEY_FLASH_01": canaries.gemini_key(),
        "VAULT_ADDR": f"http://127.0.0.1:{free_port()}",
    }
    code, report, err = run_health(tmp_path, env)
    assert code == 0, err
    assert report["secret_store"] == {"type": "env"}


# -- docs/secret-stores.md's test_secret_access example ---------------------------------------------

DOC = Path(__file__).resolve().parents[3] / "docs" / "secret-stores.md"


def test_the_docs_test_secret_access_example_runs_as_shown(
    tmp_path: Path, vault: VaultFixture
) -> None:
    """The command of the doc, run as written against a real Vault, prints the answer the doc
    shows (the same fields; found at the doc's location)."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Troubleshooting: `secrets check` and `test_secret_access`") :]
    command = re.search(r'^python -c "(.*test_secret_access.*)"$', section, re.MULTILINE)
    shown = re.search(r"```python\n(\{.*?\})\n```", section, re.DOTALL)
    assert command is not None and shown is not None
    expected = ast.literal_eval(shown.group(1))
    keys_json(tmp_path, "flash_01")
    vault.put("secret/llm/flash_01", value=canaries.gemini_key())
    env = {
        **vault_env(vault.url, vault.root_token, "secret/llm"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(DOC.parents[1])),
    }
    out = subprocess.run(
        [sys.executable, "-c", command.group(1)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer = ast.literal_eval(out.stdout.strip())
    assert set(answer) == set(expected)
    fingerprint = answer.pop("fingerprint")
    assert re.fullmatch(r"[0-9a-f]{8}", fingerprint)
    expected.pop("fingerprint")
    assert answer == expected
