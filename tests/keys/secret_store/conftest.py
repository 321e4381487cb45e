"""Fixtures of the secret-store tests: real servers (OpenBao, moto), HTTPS and HTTP fakes (Azure
Key Vault, Infisical), and a capture of the product's real, formatted log output."""

from __future__ import annotations

import io
import logging
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
import trustme

from kernel.log import configure_logging
from kernel.settings import Settings
from tests.keys.secret_store.azure_fake import AzureKeyVaultFake
from tests.keys.secret_store.infisical_fake import InfisicalFake
from tests.keys.secret_store.servers import OpenBao, moto_server, openbao_dev_server

READ_POLICY = """
path "secret/data/llm/*" { capabilities = ["read"] }
path "secret/metadata/llm/*" { capabilities = ["list"] }
path "secret/metadata/llm" { capabilities = ["list"] }
"""


@dataclass
class VaultFixture:
    server: OpenBao
    role_id: str
    secret_id: str
    weak_token: str  # a valid token without the read policy

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def root_token(self) -> str:
        return self.server.root_token

    def admin(self) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.root_token)

    def put(self, path: str, **data: str) -> None:
        mount, _, rel = path.partition("/")
        self.admin().secrets.kv.v2.create_or_update_secret(path=rel, secret=data, mount_point=mount)

    def delete(self, path: str) -> None:
        mount, _, rel = path.partition("/")
        self.admin().secrets.kv.v2.delete_metadata_and_all_versions(path=rel, mount_point=mount)

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "SECRET_STORE_TYPE": "vault",
            "VAULT_ADDR": self.url,
            "VAULT_TOKEN": self.root_token,
            "VAULT_SECRET_PATH": f"secret/llm/{uuid.uuid4().hex[:8]}",
        }
        values.update(overrides)
        return Settings.from_env({}, **{k: v for k, v in values.items() if v is not None})


@pytest.fixture(scope="session")
def vault() -> Iterator[VaultFixture]:
    """An OpenBao dev server with AppRole enabled, a read policy and a role that has it."""
    with openbao_dev_server() as server:
        admin = hvac.Client(url=server.url, token=server.root_token)
        admin.sys.create_or_update_policy(name="llm-read", policy=READ_POLICY)
        admin.sys.enable_auth_method(method_type="approle")
        admin.auth.approle.create_or_update_approle(
            role_name="router", token_policies=["llm-read"], token_ttl="1h"
        )
        role_id = admin.auth.approle.read_role_id(role_name="router")["data"]["role_id"]
        secret_id = admin.auth.approle.generate_secret_id(role_name="router")["data"]["secret_id"]
        weak = admin.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"]
        admin.adapter.close()
        yield VaultFixture(server, role_id, secret_id, weak)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def aws_environ() -> dict[str, str]:
    """Credentials for moto (any value works); never the developer's."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="session")
def tls_ca() -> Iterator[tuple[trustme.CA, Path]]:
    """A test certificate authority and its CA bundle file."""
    ca = trustme.CA()
    workdir = Path(tempfile.mkdtemp(prefix="tls-ca-"))
    bundle = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    yield ca, bundle
    bundle.unlink(missing_ok=True)
    workdir.rmdir()


@pytest.fixture
async def azure_vault(tls_ca: tuple[trustme.CA, Path]) -> AsyncIterator[AzureKeyVaultFake]:
    fake = AzureKeyVaultFake()
    await fake.start(*tls_ca)
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def infisical() -> AsyncIterator[InfisicalFake]:
    fake = InfisicalFake()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def infisical_settings(fake: InfisicalFake, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "SECRET_STORE_TYPE": "infisical",
        "INFISICAL_SITE_URL": fake.url,
        "INFISICAL_CLIENT_ID": fake.client_id,
        "INFISICAL_CLIENT_SECRET": fake.client_secret,
        "INFISICAL_PROJECT_ID": fake.project_id,
        "INFISICAL_ENVIRONMENT": fake.environment,
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The product's formatted log output (JSON, DEBUG, every library's records) of one test."""
    root = logging.getLogger()
    old_level = root.level
    configure_logging(level="DEBUG", fmt="json", force=True)
    handler = next(h for h in root.handlers if getattr(h, "_llm_router", False))
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)
        configure_logging(fmt="json", force=True)
        root.setLevel(old_level)
