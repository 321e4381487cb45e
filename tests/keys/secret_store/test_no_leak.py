"""No leak: planted secrets flow through every backend with DEBUG logging on; no log line, error
message, health or troubleshooting answer carries one, and the scanner finds none in what was
logged, while it does find a planted key in a file."""

from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from kernel.errors import SecretStoreError
from kernel.log import get_logger
from kernel.settings import Settings
from keys.models import APIKey
from keys.scanner import scan_paths
from keys.secret_store import SecretStore, create_secret_store, describe_secret_access
from tests.keys.secret_store import canaries
from tests.keys.secret_store.azure_fake import AzureKeyVaultFake
from tests.keys.secret_store.conftest import VaultFixture, infisical_settings
from tests.keys.secret_store.infisical_fake import InfisicalFake

pytestmark = pytest.mark.integration


def key(key_id: str, provider: str = "openai", **extra: object) -> APIKey:
    return APIKey.model_validate(
        {"key_id": key_id, "provider": provider, "model_name": "*", **extra}
    )


class Transcript:
    """Everything a user or an operator could see: answers, errors, health reports."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, value: Any) -> None:
        self.parts.append(value if isinstance(value, str) else json.dumps(value, default=str))

    async def exercise(self, store: SecretStore, good: list[APIKey], bad: list[APIKey]) -> None:
        for k in good:
            await store.get_secret(k)
            self.add(await describe_secret_access(store, k))
        for k in bad:
            try:
                await store.get_secret(k)
            except SecretStoreError as exc:
                self.add(str(exc))
                self.add(exc.to_dict())
                self.add(repr(exc))
            self.add(await describe_secret_access(store, k))
        self.add(await store.health_check())
        self.add(repr(store))
        self.add(await store.refresh())


async def test_no_planted_secret_reaches_logs_errors_or_answers(
    log_output: io.StringIO,
    tmp_path: Path,
    vault: VaultFixture,
    moto_url: str,
    aws_environ: dict[str, str],
    azure_vault: AzureKeyVaultFake,
    infisical: InfisicalFake,
) -> None:
    seen = Transcript()

    # env: a provider key and an opaque secret (only registration can mask the latter)
    opaque = canaries.opaque_secret()
    env = {"API_KEY_ENV_1": canaries.openai_key(), "API_KEY_ENV_2": opaque}
    env_store = create_secret_store(Settings.from_env({}), env)
    await seen.exercise(env_store, [key("env-1"), key("env-2")], [key("env-3")])

    # vault: token and AppRole; missing, denied
    settings = vault.settings()
    vault.put(f"{settings.VAULT_SECRET_PATH}/v1", value=canaries.gemini_key())
    vault.put(f"{settings.VAULT_SECRET_PATH}/v2", api_key=canaries.anthropic_key())
    vault.put("secret/private/v3", api_key=canaries.anthropic_key())
    for s in (
        settings,
        vault.settings(
            VAULT_SECRET_PATH=settings.VAULT_SECRET_PATH,
            VAULT_TOKEN=None,
            VAULT_ROLE_ID=vault.role_id,
            VAULT_SECRET_ID=vault.secret_id,
        ),
    ):
        store = create_secret_store(s)
        await seen.exercise(
            store,
            [key("v1"), key("v2")],
            [key("v-missing"), key("v3", secret_ref="secret/private/v3")],
        )
        assert len(await store.list_secrets()) == 2  # values are its answer: not shown anywhere
        await store.close()

    # aws: plain and JSON; missing
    prefix = f"leak-{uuid.uuid4().hex[:6]}/"
    client = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_secret(Name=f"{prefix}a1", SecretString=canaries.openai_key())
    client.create_secret(
        Name=f"{prefix}a2", SecretString=json.dumps({"api_key": canaries.gemini_key()})
    )
    aws = create_secret_store(
        Settings.from_env(
            {}, SECRET_STORE_TYPE="aws", AWS_ENDPOINT_URL=moto_url, AWS_SECRET_PREFIX=prefix
        ),
        aws_environ,
    )
    await seen.exercise(aws, [key("a1"), key("a2")], [key("a3")])
    await aws.close()

    # azure: get, missing, forbidden, wrong credential
    azure_vault.secrets.update({"z1": canaries.openai_key(), "z2": canaries.opaque_secret()})
    azure_vault.forbidden.add("z3")
    azure_settings = Settings.from_env(
        {},
        SECRET_STORE_TYPE="azure",
        AZURE_VAULT_URL=azure_vault.vault_url,
        AZURE_TENANT_ID=azure_vault.tenant_id,
        AZURE_CLIENT_ID=azure_vault.client_id,
        AZURE_CLIENT_SECRET=azure_vault.client_secret,
        AZURE_AUTHORITY_HOST=azure_vault.url,
    )
    kwargs = {"connection_verify": str(azure_vault.ca_path), "verify_challenge_resource": False}
    azure = create_secret_store(azure_settings, client_kwargs=kwargs)
    await seen.exercise(azure, [key("z1"), key("z2")], [key("z3"), key("z4")])
    await azure.close()

    # infisical: get, listing, an outage during refresh, then a rotation
    infisical.put("/", "i1", canaries.openai_key())
    infisical.put("/pool", "KEY_1", canaries.anthropic_key())
    inf = create_secret_store(infisical_settings(infisical))
    await seen.exercise(inf, [key("i1")], [key("i2")])
    seen.add(await inf.watch("/pool", lambda name: f"pool.{name}"))
    infisical.outage = True
    seen.add(await inf.refresh())
    infisical.outage = False
    infisical.put("/", "i1", canaries.openai_key())
    seen.add(await inf.refresh())
    await inf.close()

    # Code that carelessly logs a secret it was handed: the pipeline masks it.
    get_logger("careless").info("calling provider", authorization=f"Bearer {opaque}")
    logging.getLogger("some.library").debug("sent header x-api-key: %s", opaque)

    logged = log_output.getvalue()
    assert "secret_refresh_failed" in logged  # the outage was logged...
    assert "calling provider" in logged and "some.library" in logged
    everything = logged + "\n".join(seen.parts)
    assert canaries.leaked_in(everything) == []

    # The scanner over everything the test logged and answered: nothing.
    transcript = tmp_path / "transcript.log"
    transcript.write_text(everything)
    assert [str(f) for f in scan_paths([transcript]).findings] == []

    # ...and it does find a planted key in a file.
    planted = canaries.anthropic_key()
    (tmp_path / "artifact.txt").write_text(f"ANTHROPIC_API_KEY={planted}\n")
    findings = scan_paths([tmp_path]).findings
    assert [(Path(f.path).name, f.rule) for f in findings] == [
        ("artifact.txt", "anthropic_api_key")
    ]
    assert planted not in str(findings[0])
