"""The ``env`` backend: secrets in environment variables (documents 001, 003, 004).

A key's secret is looked up, in order, in its ``secret_ref`` variable, ``API_KEY_{KEY_ID}``
(document 004) and ``{PROVIDER}_KEY_{key_id}`` (document 003); the conventions live in
:mod:`keys.config` and are reused here. A listing of ``path`` returns every variable whose name
starts with that prefix (``GEMINI_KEY_`` lists ``GEMINI_KEY_1..N`` as ``1..N``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from keys.backends.base import SecretBackend
from keys.config import env_secret_by_ref, env_secret_for, env_secret_names
from keys.models import APIKey

DEFAULT_LIST_PREFIX = "API_KEY_"


class EnvBackend(SecretBackend):
    name = "env"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        # os.environ itself (not a copy): a refresh sees variables changed since start.
        self.environ: Mapping[str, str] = os.environ if environ is None else environ

    def default_name(self, key_id: str) -> str:
        return "API_KEY_" + re.sub(r"[^A-Z0-9]", "_", key_id.upper())

    def locate(self, key: APIKey) -> str:
        return " or ".join(name.removeprefix("env:") for name in env_secret_names(key))

    def found_in(self, key: APIKey) -> str:
        """The variable that holds ``key``'s secret now (the first convention that matched)."""
        value, variable = env_secret_for(key, self.environ)
        return variable if value is not None else self.locate(key)

    def ref_for(self, path: str | None, name: str) -> str:
        return f"env:{path or DEFAULT_LIST_PREFIX}{name}"

    async def read(self, key: APIKey) -> str:
        value, _variable = env_secret_for(key, self.environ)
        if value is None:
            raise self.error(key.key_id, "not_found", f"none of {self.locate(key)} is set")
        return value

    async def fetch(self, name: str, key_id: str | None) -> str:
        value = env_secret_by_ref(name, self.environ)
        if value is None:
            raise self.error(
                key_id, "not_found", f"variable {name.removeprefix('env:')} is not set"
            )
        return value

    async def list_secrets(self, path: str | None) -> dict[str, str]:
        prefix = path or DEFAULT_LIST_PREFIX
        return {
            name[len(prefix) :]: value.strip()
            for name, value in self.environ.items()
            if name.startswith(prefix) and len(name) > len(prefix) and value.strip()
        }

    def describe(self) -> dict[str, Any]:
        return {"source": "environment"}
