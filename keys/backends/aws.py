"""The ``aws`` backend: AWS Secrets Manager through ``boto3``.

Settings: ``AWS_REGION``, ``AWS_SECRET_PREFIX`` (default ``llm/``), ``AWS_ENDPOINT_URL`` (for a
VPC endpoint or a local emulator). Credentials come from the usual AWS chain (environment,
``AWS_PROFILE``, instance or task role). Key ``gemini-flash-01``'s secret is named
``{AWS_SECRET_PREFIX}gemini-flash-01``; its value is the key itself or JSON ``{"api_key": ...}``::

    aws secretsmanager create-secret --name llm/gemini-flash-01 \
        --secret-string '{"api_key":"AIza..."}'

boto3 is synchronous: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kernel.errors import SecretStoreError
from kernel.settings import Settings
from keys.backends.base import SecretBackend, safe_detail, split_field, value_of_string

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

_NOT_FOUND = {"ResourceNotFoundException"}
_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "DecryptionFailure",
    "KMSAccessDeniedException",
}
_CONFIG = {"InvalidParameterException", "ValidationException"}


def _cause_of(code: str, message: str) -> str:
    """The cause of an AWS error code (a secret scheduled for deletion counts as not found)."""
    lowered = message.lower()
    if code in _NOT_FOUND or (
        code == "InvalidRequestException"
        and ("marked for deletion" in lowered or "marked deleted" in lowered)
    ):
        return "not_found"
    if code in _DENIED:
        return "denied"
    return "config" if code in _CONFIG else "unreachable"


class AwsBackend(SecretBackend):
    name = "aws"

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.region = settings.AWS_REGION
        self.prefix = settings.AWS_SECRET_PREFIX
        self.endpoint_url = settings.AWS_ENDPOINT_URL
        self._timeout = settings.SECRET_STORE_TIMEOUT_SECONDS
        self._environ = os.environ if environ is None else environ
        self._client: SecretsManagerClient | None = None
        self._client_lock = threading.Lock()

    def default_name(self, key_id: str) -> str:
        return f"{self.prefix}{key_id}"

    def ref_for(self, path: str | None, name: str) -> str:
        return f"{self.prefix if path is None else path}{name}"

    async def fetch(self, name: str, key_id: str | None) -> str:
        secret_id, field = split_field(name)
        raw = await asyncio.to_thread(self._get_sync, secret_id, key_id)
        return value_of_string(raw, field, self.name, key_id)

    async def list_secrets(self, path: str | None) -> dict[str, str]:
        prefix = self.prefix if path is None else path
        names = await asyncio.to_thread(self._list_names_sync, prefix)
        values = await asyncio.gather(*(self.fetch(name, None) for name in names))
        return {name[len(prefix) :]: value for name, value in zip(names, values, strict=True)}

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping_sync)

    def describe(self) -> dict[str, Any]:
        return {"region": self.region, "prefix": self.prefix, "endpoint_url": self.endpoint_url}

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)

    # -- synchronous calls, run in threads ---------------------------------------------------------
    def _get_sync(self, secret_id: str, key_id: str | None) -> str:
        try:
            answer = self._boto().get_secret_value(SecretId=secret_id)
        except SecretStoreError:
            raise
        except Exception as exc:
            raise self._translate(exc, key_id, secret_id) from exc
        binary = answer.get("SecretBinary")
        if binary is not None and not answer.get("SecretString"):
            try:
                return bytes(binary).decode("utf-8")
            except UnicodeDecodeError:
                raise self.error(key_id, "malformed", f"{secret_id} holds no text") from None
        return answer.get("SecretString") or ""

    def _list_names_sync(self, prefix: str) -> list[str]:
        kwargs: dict[str, Any] = {}
        if prefix:
            kwargs["Filters"] = [{"Key": "name", "Values": [prefix]}]
        try:
            pages = self._boto().get_paginator("list_secrets").paginate(**kwargs)
            names = [entry["Name"] for page in pages for entry in page.get("SecretList", [])]
        except SecretStoreError:
            raise
        except Exception as exc:
            raise self._translate(exc, None, f"list {prefix or '*'}") from exc
        # The service's name filter is a prefix match but case-insensitive: be exact here.
        return sorted(n for n in names if n.startswith(prefix) and len(n) > len(prefix))

    def _ping_sync(self) -> None:
        try:
            self._boto().list_secrets(MaxResults=1)
        except SecretStoreError:
            raise
        except Exception as exc:
            raise self._translate(exc, None, "list_secrets") from exc

    def _boto(self) -> SecretsManagerClient:
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> SecretsManagerClient:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:  # pragma: no cover - the extra is installed in development
            raise self.error(
                None, "config", "boto3 is not installed: pip install 'llm-keypool-router[aws]'"
            ) from None
        env = self._environ
        session = boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
            profile_name=env.get("AWS_PROFILE") or None,
            region_name=self.region,
        )
        config = Config(
            connect_timeout=self._timeout,
            read_timeout=self._timeout,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        return session.client("secretsmanager", endpoint_url=self.endpoint_url, config=config)

    def _translate(self, exc: Exception, key_id: str | None, where: str) -> SecretStoreError:
        from botocore import exceptions as bex

        if isinstance(exc, bex.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            message = str(exc.response.get("Error", {}).get("Message", ""))
            cause = _cause_of(code, message)
            return self.error(key_id, cause, f"{where}: {code}: {safe_detail(message)}")
        if isinstance(
            exc, bex.NoCredentialsError | bex.PartialCredentialsError | bex.NoRegionError
        ):
            return self.error(
                key_id, "config", f"{where}: {type(exc).__name__}: {safe_detail(str(exc))}"
            )
        if isinstance(exc, bex.ProfileNotFound):
            return self.error(key_id, "config", f"{where}: {safe_detail(str(exc))}")
        return self.error(key_id, "unreachable", f"{where}: {type(exc).__name__}")
