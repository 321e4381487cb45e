"""The aws backend against moto's Secrets Manager server (boto3 with ``endpoint_url``)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from kernel.errors import SecretStoreError
from kernel.settings import Settings
from keys.models import APIKey
from keys.secret_store import SecretStore, create_secret_store
from tests.keys.secret_store import canaries
from tests.servers import free_port

pytestmark = pytest.mark.integration


def key(key_id: str, **extra: object) -> APIKey:
    return APIKey.model_validate(
        {"key_id": key_id, "provider": "gemini", "model_name": "gemini-2.5-flash", **extra}
    )


def admin(url: str, environ: dict[str, str]) -> object:
    return boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environ["AWS_SECRET_ACCESS_KEY"],
    )


def aws_store(url: str, environ: dict[str, str], prefix: str) -> SecretStore:
    settings = Settings.from_env(
        {}, SECRET_STORE_TYPE="aws", AWS_ENDPOINT_URL=url, AWS_SECRET_PREFIX=prefix
    )
    return create_secret_store(settings, environ)


async def test_plain_and_json_secrets(moto_url: str, aws_environ: dict[str, str]) -> None:
    prefix = f"llm-{uuid.uuid4().hex[:8]}/"
    plain, wrapped = canaries.gemini_key(), canaries.gemini_key()
    client = admin(moto_url, aws_environ)
    # document 003: --secret-string sk-...; document 004: --secret-string '{"api_key":"AIza..."}'
    client.create_secret(Name=f"{prefix}flash_01", SecretString=plain)  # type: ignore[attr-defined]
    client.create_secret(  # type: ignore[attr-defined]
        Name=f"{prefix}gemini-flash-01", SecretString=json.dumps({"api_key": wrapped})
    )
    store = aws_store(moto_url, aws_environ, prefix)
    try:
        assert store.backend == "aws"
        assert await store.get_secret(key("flash_01")) == plain
        assert await store.get_secret(key("gemini-flash-01")) == wrapped
        assert (await store.health_check())["ok"] is True
    finally:
        await store.close()


async def test_not_found_field_and_listing(moto_url: str, aws_environ: dict[str, str]) -> None:
    prefix = f"llm-{uuid.uuid4().hex[:8]}/"
    one, two, other = canaries.openai_key(), canaries.openai_key(), canaries.opaque_secret()
    client = admin(moto_url, aws_environ)
    client.create_secret(Name=f"{prefix}openai/KEY_1", SecretString=one)  # type: ignore[attr-defined]
    client.create_secret(  # type: ignore[attr-defined]
        Name=f"{prefix}openai/KEY_2", SecretString=json.dumps({"value": two})
    )
    client.create_secret(  # type: ignore[attr-defined]
        Name=f"{prefix}custom", SecretString=json.dumps({"token": other})
    )
    store = aws_store(moto_url, aws_environ, prefix)
    try:
        with pytest.raises(SecretStoreError) as caught:
            await store.get_secret(key("missing-key"))
        assert (caught.value.backend, caught.value.cause) == ("aws", "not_found")
        assert f"{prefix}missing-key" in str(caught.value)
        assert await store.get_secret(key("c", secret_ref=f"{prefix}custom#token")) == other
        with pytest.raises(SecretStoreError) as malformed:
            await store.get_secret(key("c2", secret_ref=f"{prefix}custom"))
        assert malformed.value.cause == "malformed" and other not in str(malformed.value)
        assert await store.list_secrets(f"{prefix}openai/") == {"KEY_1": one, "KEY_2": two}
        assert store.ref_for(f"{prefix}openai/", "KEY_1") == f"{prefix}openai/KEY_1"
    finally:
        await store.close()


async def test_deleted_secret_is_not_found(moto_url: str, aws_environ: dict[str, str]) -> None:
    prefix = f"llm-{uuid.uuid4().hex[:8]}/"
    client = admin(moto_url, aws_environ)
    client.create_secret(Name=f"{prefix}gone", SecretString=canaries.gemini_key())  # type: ignore[attr-defined]
    client.delete_secret(SecretId=f"{prefix}gone", RecoveryWindowInDays=7)  # type: ignore[attr-defined]
    store = aws_store(moto_url, aws_environ, prefix)
    try:
        with pytest.raises(SecretStoreError) as caught:
            await store.get_secret(key("gone"))
        assert caught.value.cause == "not_found"
    finally:
        await store.close()


async def test_unreachable_endpoint(aws_environ: dict[str, str]) -> None:
    settings = Settings.from_env(
        {},
        SECRET_STORE_TYPE="aws",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        SECRET_STORE_TIMEOUT_SECONDS=2,
    )
    store = create_secret_store(settings, aws_environ)
    try:
        with pytest.raises(SecretStoreError) as caught:
            await store.get_secret(key("k"))
        assert caught.value.cause == "unreachable"
    finally:
        await store.close()
