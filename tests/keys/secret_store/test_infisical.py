"""The infisical backend (Universal Auth, v3 raw secrets) against a loopback fake of its API."""

from __future__ import annotations

import pytest

from kernel.errors import SecretStoreError
from keys.models import APIKey
from keys.secret_store import create_secret_store
from tests.keys.secret_store import canaries
from tests.keys.secret_store.conftest import infisical_settings
from tests.keys.secret_store.infisical_fake import InfisicalFake

pytestmark = pytest.mark.integration


def key(key_id: str, **extra: object) -> APIKey:
    return APIKey.model_validate(
        {"key_id": key_id, "provider": "openai", "model_name": "gpt-4o", **extra}
    )


async def test_login_get_and_list_like_document_000(infisical: InfisicalFake) -> None:
    one, two, single = canaries.openai_key(), canaries.openai_key(), canaries.openai_key()
    infisical.put("/openai-keys", "KEY_1", one)
    infisical.put("/openai-keys", "KEY_2", two)
    infisical.put("/llm", "gpt-main", single)
    store = create_secret_store(infisical_settings(infisical, INFISICAL_SECRET_PATH="/llm"))
    try:
        assert store.backend == "infisical"
        assert await store.get_secret(key("gpt-main")) == single  # named by key id in /llm
        assert await store.list_secrets("/openai-keys") == {"KEY_1": one, "KEY_2": two}
        ref = store.ref_for("/openai-keys", "KEY_2")
        assert ref == "/openai-keys/KEY_2"
        assert await store.get_secret(key("pool-2", secret_ref=ref)) == two
        assert infisical.logins == 1  # one access token for every call
        assert (await store.health_check())["ok"] is True
    finally:
        await store.close()


async def test_token_is_renewed_after_a_401(infisical: InfisicalFake) -> None:
    infisical.put("/", "k1", canaries.openai_key())
    infisical.put("/", "k2", canaries.openai_key())
    store = create_secret_store(infisical_settings(infisical))
    try:
        await store.get_secret(key("k1"))
        infisical.revoke_tokens()
        await store.get_secret(key("k2"))
        assert infisical.logins == 2
    finally:
        await store.close()


async def test_expiring_tokens_are_renewed_before_use(infisical: InfisicalFake) -> None:
    infisical.expires_in = 2  # shorter than the renewal margin: renewed at every use
    infisical.put("/", "k1", canaries.openai_key())
    store = create_secret_store(infisical_settings(infisical))
    try:
        await store.read_uncached(key("k1"))
        await store.read_uncached(key("k1"))
        assert infisical.logins == 2
    finally:
        await store.close()


async def test_errors_by_cause(infisical: InfisicalFake) -> None:
    infisical.put("/", "k1", canaries.openai_key())
    store = create_secret_store(infisical_settings(infisical))
    try:
        with pytest.raises(SecretStoreError) as absent:
            await store.get_secret(key("missing"))
        assert (absent.value.backend, absent.value.cause) == ("infisical", "not_found")
        with pytest.raises(SecretStoreError) as folder:
            await store.list_secrets("/no-such-folder")
        assert folder.value.cause == "not_found"
        infisical.hide_values = True
        with pytest.raises(SecretStoreError) as hidden:
            await store.read_uncached(key("k1"))
        assert hidden.value.cause == "denied"
        infisical.hide_values = False
        infisical.outage = True
        with pytest.raises(SecretStoreError) as down:
            await store.read_uncached(key("k1"))
        assert down.value.cause == "unreachable" and "503" in str(down.value)
    finally:
        await store.close()


async def test_wrong_credentials_and_wrong_environment(infisical: InfisicalFake) -> None:
    infisical.put("/", "k1", canaries.openai_key())
    wrong = create_secret_store(infisical_settings(infisical, INFISICAL_CLIENT_SECRET="f" * 64))
    staging = create_secret_store(infisical_settings(infisical, INFISICAL_ENVIRONMENT="staging"))
    try:
        with pytest.raises(SecretStoreError) as denied:
            await wrong.get_secret(key("k1"))
        assert denied.value.cause == "denied" and "f" * 64 not in str(denied.value)
        assert (await wrong.health_check())["ok"] is False
        with pytest.raises(SecretStoreError) as env:
            await staging.get_secret(key("k1"))
        assert env.value.cause == "not_found" and "staging" in str(env.value)
    finally:
        await wrong.close()
        await staging.close()


def test_required_settings() -> None:
    from kernel.settings import Settings

    with pytest.raises(SecretStoreError) as caught:
        create_secret_store(Settings.from_env({}, SECRET_STORE_TYPE="infisical"))
    assert caught.value.cause == "config"
    assert "INFISICAL_CLIENT_ID" in str(caught.value) and "INFISICAL_PROJECT_ID" in str(
        caught.value
    )
