"""The vault backend against a real OpenBao dev server (Vault's API): KV v2, AppRole, denial."""

from __future__ import annotations

import pytest

from kernel.errors import SecretStoreError
from keys.models import APIKey
from keys.secret_store import create_secret_store
from tests.keys.secret_store import canaries
from tests.keys.secret_store.conftest import VaultFixture
from tests.servers import free_port

pytestmark = pytest.mark.integration


def key(key_id: str, **extra: object) -> APIKey:
    return APIKey.model_validate(
        {"key_id": key_id, "provider": "gemini", "model_name": "gemini-2.5-flash", **extra}
    )


async def test_kv2_reads_field_value_and_field_api_key(vault: VaultFixture) -> None:
    settings = vault.settings()
    base = settings.VAULT_SECRET_PATH
    doc3, doc4 = canaries.gemini_key(), canaries.gemini_key()
    vault.put(f"{base}/flash_01", value=doc3)  # document 003: vault kv put .../flash_01 value=...
    vault.put(f"{base}/gemini-pro-01", api_key=doc4)  # document 004: ... api_key=...
    store = create_secret_store(settings)
    try:
        assert store.backend == "vault"
        assert await store.get_secret(key("flash_01")) == doc3
        assert await store.get_secret(key("gemini-pro-01")) == doc4
        health = await store.health_check()
        assert health["ok"] is True and health["auth"] == "token"
    finally:
        await store.close()


async def test_secret_ref_with_field_and_listing(vault: VaultFixture) -> None:
    settings = vault.settings()
    base = settings.VAULT_SECRET_PATH
    chosen, one, two = canaries.openai_key(), canaries.openai_key(), canaries.openai_key()
    vault.put(f"{base}/shared", primary=chosen, api_key=canaries.openai_key())
    vault.put(f"{base}/pool/KEY_1", value=one)
    vault.put(f"{base}/pool/KEY_2", api_key=two)
    store = create_secret_store(settings)
    try:
        picked = key("any-id", secret_ref=f"{base}/shared#primary")
        assert await store.get_secret(picked) == chosen
        assert await store.list_secrets(f"{base}/pool") == {"KEY_1": one, "KEY_2": two}
        assert await store.list_secrets(f"{base}/empty-folder") == {}
        assert store.ref_for(f"{base}/pool", "KEY_1") == f"{base}/pool/KEY_1"
    finally:
        await store.close()


async def test_missing_secret_and_missing_field(vault: VaultFixture) -> None:
    settings = vault.settings()
    vault.put(f"{settings.VAULT_SECRET_PATH}/odd", password=canaries.opaque_secret())
    store = create_secret_store(settings)
    try:
        with pytest.raises(SecretStoreError) as absent:
            await store.get_secret(key("nowhere"))
        assert (absent.value.backend, absent.value.cause) == ("vault", "not_found")
        assert absent.value.key_id == "nowhere"
        with pytest.raises(SecretStoreError) as odd:
            await store.get_secret(key("odd"))
        assert odd.value.cause == "malformed" and "'password'" in str(odd.value)
    finally:
        await store.close()


async def test_approle_login_reads_with_the_role_policy(vault: VaultFixture) -> None:
    settings = vault.settings(
        VAULT_TOKEN=None, VAULT_ROLE_ID=vault.role_id, VAULT_SECRET_ID=vault.secret_id
    )
    secret = canaries.anthropic_key()
    vault.put(f"{settings.VAULT_SECRET_PATH}/claude-1", api_key=secret)
    store = create_secret_store(settings)
    try:
        assert await store.get_secret(key("claude-1")) == secret
        health = await store.health_check()
        assert health["ok"] is True and health["auth"] == "approle"
        # The role's policy covers secret/llm/* only.
        vault.put("secret/other/claude-2", api_key=canaries.anthropic_key())
        with pytest.raises(SecretStoreError) as caught:
            await store.get_secret(key("claude-2", secret_ref="secret/other/claude-2"))
        assert caught.value.cause == "denied"
    finally:
        await store.close()


async def test_bad_approle_credentials_are_denied(vault: VaultFixture) -> None:
    settings = vault.settings(
        VAULT_TOKEN=None, VAULT_ROLE_ID=vault.role_id, VAULT_SECRET_ID="not-the-secret-id"
    )
    store = create_secret_store(settings)
    try:
        with pytest.raises(SecretStoreError) as caught:
            await store.get_secret(key("k"))
        assert caught.value.cause == "denied" and "AppRole" in str(caught.value)
        assert "not-the-secret-id" not in str(caught.value)
    finally:
        await store.close()


async def test_token_without_the_policy_is_denied(vault: VaultFixture) -> None:
    settings = vault.settings(VAULT_TOKEN=vault.weak_token)
    vault.put(f"{settings.VAULT_SECRET_PATH}/flash_09", value=canaries.gemini_key())
    store = create_secret_store(settings)
    try:
        with pytest.raises(SecretStoreError) as caught:
            await store.get_secret(key("flash_09"))
        assert (caught.value.backend, caught.value.cause) == ("vault", "denied")
        assert vault.weak_token not in str(caught.value)
    finally:
        await store.close()


async def test_unreachable_vault_and_missing_settings(vault: VaultFixture) -> None:
    settings = vault.settings(
        VAULT_ADDR=f"http://127.0.0.1:{free_port()}", SECRET_STORE_TIMEOUT_SECONDS=2
    )
    store = create_secret_store(settings)
    try:
        with pytest.raises(SecretStoreError) as caught:
            await store.get_secret(key("k"))
        assert caught.value.cause == "unreachable"
        health = await store.health_check()
        assert health["ok"] is False and health["cause"] == "unreachable"
    finally:
        await store.close()
    with pytest.raises(SecretStoreError) as config:
        create_secret_store(vault.settings(VAULT_TOKEN=None))
    assert config.value.cause == "config" and "VAULT_ROLE_ID" in str(config.value)
