"""The azure backend: the real ``azure-keyvault-secrets`` async client and azure-identity's
``ClientSecretCredential`` against an HTTPS fake that answers with a bearer challenge first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel.errors import SecretStoreError
from kernel.settings import Settings
from keys.models import APIKey
from keys.secret_store import SecretStore, create_secret_store
from tests.keys.secret_store import canaries
from tests.keys.secret_store.azure_fake import AzureKeyVaultFake

pytestmark = pytest.mark.integration


def key(key_id: str, **extra: object) -> APIKey:
    return APIKey.model_validate(
        {"key_id": key_id, "provider": "gemini", "model_name": "gemini-2.5-flash", **extra}
    )


def azure_settings(fake: AzureKeyVaultFake, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "SECRET_STORE_TYPE": "azure",
        "AZURE_VAULT_URL": fake.vault_url,
        "AZURE_TENANT_ID": fake.tenant_id,
        "AZURE_CLIENT_ID": fake.client_id,
        "AZURE_CLIENT_SECRET": fake.client_secret,
        "AZURE_AUTHORITY_HOST": fake.url,
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


def azure_store(fake: AzureKeyVaultFake, **overrides: Any) -> SecretStore:
    # The fake's certificate comes from a test CA, and its host is not *.vault.azure.net, so the
    # client gets the CA bundle and skips the challenge-resource domain check (documented).
    client_kwargs = {"connection_verify": str(fake.ca_path), "verify_challenge_resource": False}
    return create_secret_store(azure_settings(fake, **overrides), client_kwargs=client_kwargs)


async def test_challenge_then_token_then_secret(azure_vault: AzureKeyVaultFake) -> None:
    secret = canaries.gemini_key()
    azure_vault.secrets["flash-01"] = secret  # az keyvault secret set --name flash-01 (flash_01)
    store = azure_store(azure_vault)
    try:
        assert store.backend == "azure"
        assert await store.get_secret(key("flash_01")) == secret
        assert azure_vault.challenges == 1  # the first request went out without a token
        assert azure_vault.token_requests == 1  # then the credential asked Entra ID for one
        assert azure_vault.authorized_requests == ["/secrets/flash-01/"]
        assert await store.get_secret(key("flash_01")) == secret  # cached
        assert azure_vault.authorized_requests == ["/secrets/flash-01/"]
        health = await store.health_check()
        assert health["ok"] is True and health["vault_url"] == azure_vault.vault_url
    finally:
        await store.close()


async def test_json_value_not_found_forbidden_and_listing(azure_vault: AzureKeyVaultFake) -> None:
    wrapped, one, two = canaries.openai_key(), canaries.openai_key(), canaries.openai_key()
    azure_vault.secrets.update(
        {"gpt-main": json.dumps({"api_key": wrapped}), "openai-1": one, "openai-2": two}
    )
    azure_vault.forbidden.add("locked")
    store = azure_store(azure_vault)
    try:
        assert await store.get_secret(key("gpt.main")) == wrapped
        with pytest.raises(SecretStoreError) as absent:
            await store.get_secret(key("nothing-here"))
        assert (absent.value.backend, absent.value.cause) == ("azure", "not_found")
        with pytest.raises(SecretStoreError) as locked:
            await store.get_secret(key("locked"))
        assert locked.value.cause == "denied"
        assert await store.list_secrets("openai-") == {"1": one, "2": two}
        with pytest.raises(SecretStoreError) as bad_ref:
            await store.get_secret(key("x", secret_ref="has_underscore"))
        assert bad_ref.value.cause == "config"
    finally:
        await store.close()


async def test_wrong_client_secret_is_denied(azure_vault: AzureKeyVaultFake) -> None:
    azure_vault.secrets["k1"] = canaries.gemini_key()
    store = azure_store(azure_vault, AZURE_CLIENT_SECRET="wrong-" + "x1Y2z3" * 4)
    try:
        with pytest.raises(SecretStoreError) as caught:
            await store.get_secret(key("k1"))
        assert caught.value.cause == "denied"
        assert "x1Y2z3" not in str(caught.value)
    finally:
        await store.close()


async def test_untrusted_certificate_is_unreachable(azure_vault: AzureKeyVaultFake) -> None:
    azure_vault.secrets["k1"] = canaries.gemini_key()
    # No CA bundle: TLS must fail (and no retries, to keep the test short).
    store = create_secret_store(azure_settings(azure_vault), client_kwargs={"retry_total": 0})
    try:
        with pytest.raises(SecretStoreError) as caught:
            await store.get_secret(key("k1"))
        assert caught.value.cause == "unreachable" and "CERTIFICATE_VERIFY_FAILED" in str(
            caught.value
        )
        assert azure_vault.authorized_requests == []
    finally:
        await store.close()


def test_missing_vault_url_is_a_config_error() -> None:
    with pytest.raises(SecretStoreError) as caught:
        create_secret_store(Settings.from_env({}, SECRET_STORE_TYPE="azure"))
    assert caught.value.cause == "config" and "AZURE_VAULT_URL" in str(caught.value)
