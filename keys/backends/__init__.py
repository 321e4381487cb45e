"""Secret backends, one module each: env, file, vault, aws, azure, infisical.

:func:`create_backend` builds the one named by ``SECRET_STORE_TYPE``. The vault, aws and azure
modules import their client libraries (optional extras) only when chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kernel.errors import SecretStoreError
from kernel.settings import Settings
from keys.backends.base import SecretBackend

BACKENDS = ("env", "file", "vault", "aws", "azure", "infisical")


def create_backend(
    name: str, settings: Settings, environ: Mapping[str, str] | None = None, **options: Any
) -> SecretBackend:
    """The backend ``name`` configured from ``settings``; ``options`` go to its constructor."""
    if name == "env":
        from keys.backends.env import EnvBackend

        return EnvBackend(environ)
    if name == "file":
        from keys.backends.file import FileBackend

        return FileBackend(settings.SECRETS_FILE)
    if name == "vault":
        from keys.backends.vault import VaultBackend

        return VaultBackend(settings)
    if name == "aws":
        from keys.backends.aws import AwsBackend

        return AwsBackend(settings, environ)
    if name == "azure":
        from keys.backends.azure import AzureBackend

        return AzureBackend(settings, **options)
    if name == "infisical":
        from keys.backends.infisical import InfisicalBackend

        return InfisicalBackend(settings)
    raise SecretStoreError(
        name, None, "config", f"unknown SECRET_STORE_TYPE; use one of {', '.join(BACKENDS)}"
    )


__all__ = ["BACKENDS", "SecretBackend", "create_backend"]
