"""The ``azure`` backend: Azure Key Vault through ``azure-keyvault-secrets`` (async client).

Settings: ``AZURE_VAULT_URL``; credentials from ``azure-identity``: a client-secret credential
when ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID`` and ``AZURE_CLIENT_SECRET`` are set
(``AZURE_AUTHORITY_HOST`` for sovereign clouds), else ``DefaultAzureCredential`` (managed
identity, workload identity, Azure CLI login, ...).

Key Vault secret names allow only letters, digits and dashes, so key id ``flash_01`` is stored as
``flash-01``: every other character becomes ``-`` (see :func:`azure_secret_name`). Two key ids that
differ only there (``a_b`` and ``a.b``) map to one name; give one of them a ``secret_ref``::

    az keyvault secret set --vault-name your-vault --name flash-01 --value AIza...

A secret's value is the key itself or JSON ``{"api_key": ...}``.
"""

from __future__ import annotations

import re
from typing import Any

from kernel.errors import SecretStoreError
from kernel.settings import Settings
from keys.backends.base import SecretBackend, safe_detail, split_field, value_of_string
from keys.models import APIKey

_AZURE_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")


def azure_secret_name(key_id: str) -> str:
    """``key_id`` as a Key Vault name: characters other than letters, digits, ``-`` become ``-``."""
    return re.sub(r"[^0-9A-Za-z-]", "-", key_id)[:127]


class AzureBackend(SecretBackend):
    name = "azure"

    def __init__(
        self,
        settings: Settings,
        *,
        credential: Any = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """``credential``: an azure-identity async credential (default: from settings).

        ``client_kwargs`` go to ``SecretClient`` and the credential's transport, e.g.
        ``connection_verify`` (a CA bundle) or ``verify_challenge_resource``.
        """
        if not settings.AZURE_VAULT_URL:
            raise SecretStoreError("azure", None, "config", "AZURE_VAULT_URL is not set")
        self.vault_url = settings.AZURE_VAULT_URL
        self._settings = settings
        self._credential = credential
        self._owns_credential = credential is None
        self._client_kwargs = dict(client_kwargs or {})
        self._client: Any = None

    def default_name(self, key_id: str) -> str:
        return azure_secret_name(key_id)

    def locate(self, key: APIKey) -> str:
        return key.secret_ref or azure_secret_name(key.key_id)

    def ref_for(self, path: str | None, name: str) -> str:
        return f"{path or ''}{name}"

    async def fetch(self, name: str, key_id: str | None) -> str:
        secret_name, field = split_field(name)
        if not _AZURE_NAME.match(secret_name):
            raise self.error(
                key_id, "config", f"{secret_name!r} is not a Key Vault name (letters, digits, '-')"
            )
        try:
            secret = await self._secret_client().get_secret(secret_name)
        except SecretStoreError:
            raise
        except Exception as exc:
            raise self._translate(exc, key_id, secret_name) from exc
        if secret.value is None:
            raise self.error(key_id, "malformed", f"{secret_name} has no value")
        return value_of_string(secret.value, field, self.name, key_id)

    async def list_secrets(self, path: str | None) -> dict[str, str]:
        """Key Vault has no folders: ``path`` is a name prefix (``openai-`` lists ``openai-1``)."""
        prefix = path or ""
        names: list[str] = []
        try:
            async for props in self._secret_client().list_properties_of_secrets():
                name = props.name or ""
                if (
                    name.startswith(prefix)
                    and len(name) > len(prefix)
                    and props.enabled is not False
                ):
                    names.append(name)
        except SecretStoreError:
            raise
        except Exception as exc:
            raise self._translate(exc, None, f"list {prefix or '*'}") from exc
        return {name[len(prefix) :]: await self.fetch(name, None) for name in sorted(names)}

    async def ping(self) -> None:
        try:
            pages = self._secret_client().list_properties_of_secrets(max_page_size=1).by_page()
            async for page in pages:
                async for _ in page:
                    break
                break
        except Exception as exc:
            raise self._translate(exc, None, "list secrets") from exc

    def describe(self) -> dict[str, Any]:
        return {"vault_url": self.vault_url}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._owns_credential and self._credential is not None:
            await self._credential.close()
            self._credential = None

    # -- internals ---------------------------------------------------------------------------------
    def _secret_client(self) -> Any:
        if self._client is None:
            try:
                from azure.keyvault.secrets.aio import SecretClient
            except ImportError:  # pragma: no cover - the extra is installed in development
                raise self.error(
                    None,
                    "config",
                    "azure-keyvault-secrets is not installed: "
                    "pip install 'llm-keypool-router[azure]'",
                ) from None
            if self._credential is None:
                self._credential = self._make_credential()
            self._client = SecretClient(self.vault_url, self._credential, **self._client_kwargs)
        return self._client

    def _make_credential(self) -> Any:
        from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential

        s = self._settings
        transport = {k: v for k, v in self._client_kwargs.items() if k == "connection_verify"}
        if s.AZURE_TENANT_ID and s.AZURE_CLIENT_ID and s.AZURE_CLIENT_SECRET:
            kwargs: dict[str, Any] = dict(transport)
            if s.AZURE_AUTHORITY_HOST:
                kwargs["authority"] = s.AZURE_AUTHORITY_HOST
            return ClientSecretCredential(
                s.AZURE_TENANT_ID,
                s.AZURE_CLIENT_ID,
                s.AZURE_CLIENT_SECRET.get_secret_value(),
                **kwargs,
            )
        return DefaultAzureCredential(**transport)

    def _translate(self, exc: Exception, key_id: str | None, where: str) -> SecretStoreError:
        from azure.core import exceptions as aex
        from azure.identity import CredentialUnavailableError

        cause = "unreachable"
        if isinstance(exc, CredentialUnavailableError | ValueError):
            cause = "config"  # no usable credential, or a challenge for another resource
        elif isinstance(exc, aex.ResourceNotFoundError):
            cause = "not_found"
        elif isinstance(exc, aex.ClientAuthenticationError) or (
            isinstance(exc, aex.HttpResponseError) and exc.status_code in (401, 403)
        ):
            cause = "denied"
        message = getattr(exc, "message", None) or str(exc)
        return self.error(key_id, cause, f"{where}: {type(exc).__name__}: {safe_detail(message)}")
