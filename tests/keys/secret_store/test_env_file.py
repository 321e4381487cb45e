"""The env and file backends, the ``env:`` override, and the error causes of every read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kernel.errors import SecretStoreError
from kernel.masking import redact
from kernel.settings import Settings
from keys.backends.azure import azure_secret_name
from keys.backends.base import clean_secret, pick_field, value_of_string
from keys.models import APIKey
from keys.secret_store import (
    SecretStore,
    check_secret_access,
    create_secret_store,
    test_secret_access,
)
from tests.keys.secret_store import canaries


def key(key_id: str, provider: str = "gemini", **extra: object) -> APIKey:
    return APIKey.model_validate(
        {"key_id": key_id, "provider": provider, "model_name": "gemini-2.5-flash", **extra}
    )


def env_store(environ: dict[str, str]) -> SecretStore:
    return create_secret_store(Settings.from_env({}), environ)


async def test_env_conventions_of_documents_003_and_004() -> None:
    doc4, doc3, ref = canaries.gemini_key(), canaries.gemini_key(), canaries.openai_key()
    environ = {
        "API_KEY_GEMINI_FLASH_01": doc4,  # document 004: API_KEY_{KEY_ID}
        "GEMINI_KEY_flash_02": doc3,  # document 003: {PROVIDER}_KEY_{key_id}
        "OPENAI_API_KEYS": f"x{canaries.openai_key()}, {ref}",  # a comma list, by position
    }
    store = env_store(environ)
    assert store.backend == "env"
    assert await store.get_secret(key("gemini-flash-01")) == doc4
    assert await store.get_secret(key("flash_02")) == doc3
    listed = key("openai-1", provider="openai", secret_ref="env:OPENAI_API_KEYS#2")
    assert await store.get_secret(listed) == ref
    with pytest.raises(SecretStoreError) as caught:
        await store.get_secret(key("flash_03"))
    assert caught.value.cause == "not_found"
    assert caught.value.backend == "env"
    assert "API_KEY_FLASH_03" in str(caught.value)  # says where it looked


async def test_env_listing_by_prefix() -> None:
    one, two = canaries.gemini_key(), canaries.gemini_key()
    store = env_store({"GEMINI_KEY_1": one, "GEMINI_KEY_2": two, "OTHER": "x" * 30})
    assert await store.list_secrets("GEMINI_KEY_") == {"1": one, "2": two}


async def test_every_secret_handed_out_is_masked_in_logs() -> None:
    opaque = canaries.opaque_secret()  # matches no provider pattern
    store = env_store({"API_KEY_K1": opaque})
    assert opaque in redact(f"value={opaque}")  # not yet known: nothing to mask it by
    await store.get_secret(key("k1"))
    assert opaque not in redact(f"calling with {opaque} now")


async def test_env_ref_is_read_from_the_environment_whatever_the_backend(tmp_path: Path) -> None:
    from_env = canaries.anthropic_key()
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"k1": canaries.gemini_key()}))
    secrets_file.chmod(0o600)
    settings = Settings.from_env({}, SECRET_STORE_TYPE="file", SECRETS_FILE=str(secrets_file))
    store = create_secret_store(settings, {"ANTHROPIC_API_KEY": from_env})
    assert store.backend == "file"
    pinned = key("anthropic-x", provider="anthropic", secret_ref="env:ANTHROPIC_API_KEY")
    assert await store.get_secret(pinned) == from_env
    assert store.where(pinned) == ("env", "environment variable ANTHROPIC_API_KEY")
    missing = key("anthropic-y", provider="anthropic", secret_ref="env:NOT_SET_ANYWHERE")
    with pytest.raises(SecretStoreError) as caught:
        await store.get_secret(missing)
    assert (caught.value.backend, caught.value.cause) == ("env", "not_found")


async def test_file_backend_reads_folders_and_rereads_changes(tmp_path: Path) -> None:
    first, second, folder_key = canaries.gemini_key(), canaries.gemini_key(), canaries.openai_key()
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"flash_01": first, "openai-keys": {"KEY_1": folder_key}}))
    path.chmod(0o600)
    store = create_secret_store(
        Settings.from_env({}, SECRET_STORE_TYPE="file", SECRETS_FILE=str(path))
    )
    assert await store.get_secret(key("flash_01")) == first
    assert await store.list_secrets("/openai-keys") == {"KEY_1": folder_key}
    assert await store.get_secret(key("x", secret_ref="openai-keys/KEY_1")) == folder_key
    path.write_text(json.dumps({"flash_01": second, "padding": "to change the size"}))
    changes = await store.refresh()
    assert changes.changed == {"flash_01"}
    assert await store.get_secret(key("flash_01")) == second
    health = await store.health_check()
    assert health["ok"] is True and health["path"] == str(path)


async def test_file_backend_errors_name_the_file_never_the_content(tmp_path: Path) -> None:
    planted = canaries.openai_key()
    path = tmp_path / "secrets.json"
    path.write_text('{"k1": "' + planted + '",,}')  # invalid JSON around a secret
    path.chmod(0o600)
    store = create_secret_store(
        Settings.from_env({}, SECRET_STORE_TYPE="file", SECRETS_FILE=str(path))
    )
    with pytest.raises(SecretStoreError) as caught:
        await store.get_secret(key("k1"))
    assert caught.value.cause == "malformed"
    assert str(path) in str(caught.value) and "line 1" in str(caught.value)
    assert planted not in str(caught.value)
    path.unlink()
    health = await store.health_check()
    assert health["ok"] is False and health["cause"] == "config"
    assert "does not exist" in health["error"]


async def test_file_readable_by_others_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"k1": canaries.gemini_key()}))
    path.chmod(0o644)
    store = create_secret_store(
        Settings.from_env({}, SECRET_STORE_TYPE="file", SECRETS_FILE=str(path))
    )
    await store.get_secret(key("k1"))
    assert any("secrets_file_permissions" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("   ", "empty"), ("sk-abc\nX-Injected: 1", "control characters")],
)
async def test_unusable_values_are_refused(tmp_path: Path, raw: str, reason: str) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"k1": raw}))
    path.chmod(0o600)
    store = create_secret_store(
        Settings.from_env({}, SECRET_STORE_TYPE="file", SECRETS_FILE=str(path))
    )
    with pytest.raises(SecretStoreError) as caught:
        await store.get_secret(key("k1"))
    assert caught.value.cause == "malformed" and reason in str(caught.value)


async def test_a_blank_variable_counts_as_unset() -> None:
    with pytest.raises(SecretStoreError) as caught:
        await env_store({"API_KEY_K1": "  "}).get_secret(key("k1"))
    assert caught.value.cause == "not_found"


def test_structured_secret_fields() -> None:
    assert pick_field({"value": "a"}, None, "vault", "k") == "a"
    assert pick_field({"api_key": "b", "value": "a"}, None, "vault", "k") == "b"
    assert pick_field({"token": "c"}, "token", "vault", "k") == "c"
    with pytest.raises(SecretStoreError, match=r"fields: 'other'") as caught:
        pick_field({"other": "hidden-value"}, None, "vault", "k")
    assert "hidden-value" not in str(caught.value)
    assert value_of_string('{"api_key": "z"}', None, "aws", "k") == "z"
    assert value_of_string("{not json", None, "aws", "k") == "{not json"
    assert clean_secret("  v1\n", "env", "k") == "v1"


def test_azure_names_map_other_characters_to_dashes() -> None:
    assert azure_secret_name("flash_01") == "flash-01"
    assert azure_secret_name("gemini.pro@eu:1") == "gemini-pro-eu-1"
    assert azure_secret_name("plain-name-2") == "plain-name-2"


async def test_unknown_backend_is_a_config_error() -> None:
    from keys.backends import create_backend

    with pytest.raises(SecretStoreError) as caught:
        create_backend("keepass", Settings.from_env({}))
    assert caught.value.cause == "config"


async def test_test_secret_access_reports_without_the_value(tmp_path: Path) -> None:
    secret = canaries.gemini_key()
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(
        json.dumps(
            {
                "keys": [
                    {"key_id": "flash_01", "model_name": "gemini-2.5-flash", "provider": "gemini"},
                    {"key_id": "flash_02", "model_name": "gemini-2.5-flash", "provider": "gemini"},
                ]
            }
        )
    )
    environ = {"GEMINI_KEY_flash_01": secret}
    found = await check_secret_access("flash_01", keys_path=keys_file, environ=environ)
    assert found["found"] is True and found["status"] == "found" and found["configured"] is True
    assert found["backend"] == "env" and found["location"] == "GEMINI_KEY_flash_01"
    assert len(found["fingerprint"]) == 8
    missing = await check_secret_access("flash_02", keys_path=keys_file, environ=environ)
    assert (missing["found"], missing["status"], missing["cause"]) == (
        False,
        "missing",
        "not_found",
    )
    unknown = await check_secret_access("nope", keys_path=keys_file, environ=environ)
    assert unknown["configured"] is False and unknown["status"] == "missing"
    assert canaries.leaked_in(repr([found, missing, unknown])) == []
    assert "GEMINI_KEY_flash_01" not in os.environ  # the real environment was not touched


def test_test_secret_access_is_callable_as_document_004_shows(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(
        json.dumps(
            {
                "keys": [
                    {"key_id": "flash_01", "model_name": "gemini-2.5-flash", "provider": "gemini"}
                ]
            }
        )
    )
    secret = "AIza" + "x" * 35
    answer = test_secret_access(
        "flash_01", keys_path=keys_file, environ={"GEMINI_KEY_flash_01": secret}
    )
    assert answer["found"] is True and answer["status"] == "found"
    assert secret not in json.dumps(answer)
