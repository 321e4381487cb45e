"""The ``infisical`` backend: Infisical with a machine identity's Universal Auth (document 000).

Settings (document 000's configuration block): ``INFISICAL_SITE_URL`` (default
``https://app.infisical.com``; EU or self-hosted URLs work), ``INFISICAL_CLIENT_ID``,
``INFISICAL_CLIENT_SECRET``, ``INFISICAL_PROJECT_ID``, ``INFISICAL_ENVIRONMENT`` (slug, default
``production``), ``INFISICAL_SECRET_PATH`` (default ``/``). Key ``flash_01``'s secret is the secret
named ``flash_01`` in ``INFISICAL_SECRET_PATH``; discovery lists folders such as ``/openai-keys``.

The official Python SDK is synchronous (and writes a ``.env.infisical`` file when listing), so this
is a small aiohttp client of the public REST routes:

- ``POST /api/v1/auth/universal-auth/login`` ``{clientId, clientSecret}``
  -> ``{accessToken, expiresIn}``
- ``GET /api/v3/secrets/raw`` (list a folder) -> ``{secrets: [{secretKey, secretValue}], imports}``
- ``GET /api/v3/secrets/raw/{name}`` (one secret) -> ``{secret: {secretKey, secretValue}}``

The access token is reused until shortly before it expires, and renewed once on a 401.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import aiohttp

from kernel.errors import SecretStoreError
from kernel.settings import Settings
from keys.backends.base import SecretBackend, safe_detail

LOGIN_ROUTE = "/api/v1/auth/universal-auth/login"
SECRETS_ROUTE = "/api/v3/secrets/raw"
_RENEW_MARGIN = 0.1  # renew when less than 10 % of the token's life is left,
_RENEW_MIN = 5.0  # or less than 5 seconds


class InfisicalBackend(SecretBackend):
    name = "infisical"

    def __init__(self, settings: Settings) -> None:
        missing = [
            name
            for name in ("INFISICAL_CLIENT_ID", "INFISICAL_CLIENT_SECRET", "INFISICAL_PROJECT_ID")
            if not getattr(settings, name)
        ]
        if missing:
            raise SecretStoreError("infisical", None, "config", f"{', '.join(missing)} not set")
        assert settings.INFISICAL_CLIENT_SECRET is not None
        self.site_url = settings.INFISICAL_SITE_URL.rstrip("/")
        self.project_id = str(settings.INFISICAL_PROJECT_ID)
        self.environment = settings.INFISICAL_ENVIRONMENT
        self.secret_path = "/" + settings.INFISICAL_SECRET_PATH.strip("/")
        self._client_id = str(settings.INFISICAL_CLIENT_ID)
        self._client_secret = settings.INFISICAL_CLIENT_SECRET.get_secret_value()
        self._timeout = aiohttp.ClientTimeout(total=settings.SECRET_STORE_TIMEOUT_SECONDS)
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_renew_at = 0.0

    def default_name(self, key_id: str) -> str:
        return self.ref_for(self.secret_path, key_id)

    def ref_for(self, path: str | None, name: str) -> str:
        folder = (path or self.secret_path).rstrip("/")
        return f"{folder}/{name}"

    async def fetch(self, name: str, key_id: str | None) -> str:
        folder, _, secret_name = ("/" + name.lstrip("/")).rpartition("/")
        body = await self._get(
            f"{SECRETS_ROUTE}/{quote(secret_name, safe='')}", folder or "/", key_id, name
        )
        secret = body.get("secret")
        if not isinstance(secret, dict):
            raise self.error(key_id, "malformed", f"{name}: answer has no 'secret' object")
        return self._value_of(secret, key_id, name)

    async def list_secrets(self, path: str | None) -> dict[str, str]:
        folder = "/" + (path or self.secret_path).strip("/")
        body = await self._get(SECRETS_ROUTE, folder, None, folder)
        found: dict[str, str] = {}
        # Imported secrets first: a secret defined in the folder itself wins (as in Infisical).
        for block in body.get("imports") or []:
            found.update(self._named_values(block.get("secrets") or [], folder))
        if not isinstance(body.get("secrets"), list):
            raise self.error(None, "malformed", f"{folder}: answer has no 'secrets' list")
        found.update(self._named_values(body["secrets"], folder))
        return found

    async def ping(self) -> None:
        """A fresh login: proves the site answers and the identity's credentials are valid."""
        await self._access_token(None, force=True)

    def describe(self) -> dict[str, Any]:
        return {
            "site_url": self.site_url,
            "project_id": self.project_id,
            "environment": self.environment,
            "secret_path": self.secret_path,
        }

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- internals ---------------------------------------------------------------------------------
    def _named_values(self, secrets: list[Any], where: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for secret in secrets:
            if isinstance(secret, dict) and isinstance(secret.get("secretKey"), str):
                out[secret["secretKey"]] = self._value_of(secret, None, where)
        return out

    def _value_of(self, secret: dict[str, Any], key_id: str | None, where: str) -> str:
        if secret.get("secretValueHidden"):
            raise self.error(key_id, "denied", f"{where}: the identity may not read secret values")
        value = secret.get("secretValue")
        if not isinstance(value, str):
            raise self.error(key_id, "malformed", f"{where}: 'secretValue' is not a string")
        return value

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _get(self, route: str, folder: str, key_id: str | None, where: str) -> dict[str, Any]:
        params = {
            "workspaceId": self.project_id,
            "environment": self.environment,
            "secretPath": folder,
            "viewSecretValue": "true",
            "expandSecretReferences": "true",
            "include_imports": "true",
        }
        for attempt in (1, 2):
            token = await self._access_token(key_id, force=attempt == 2)
            status, body = await self._request(
                "GET",
                route,
                key_id,
                where,
                params=params,
                headers={"Authorization": f"Bearer {token}"},
            )
            if status == 401 and attempt == 1:
                continue  # the token was revoked or expired early: log in again, once
            return self._check(status, body, key_id, where)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _access_token(self, key_id: str | None, *, force: bool) -> str:
        if self._token and not force and time.monotonic() < self._token_renew_at:
            return self._token
        status, body = await self._request(
            "POST",
            LOGIN_ROUTE,
            key_id,
            "universal-auth login",
            json={"clientId": self._client_id, "clientSecret": self._client_secret},
        )
        body = self._check(status, body, key_id, "universal-auth login")
        token, expires_in = body.get("accessToken"), body.get("expiresIn")
        if not isinstance(token, str) or not token:
            raise self.error(key_id, "malformed", "login answer has no accessToken")
        life = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 60.0
        self._token = token
        self._token_renew_at = time.monotonic() + life - max(life * _RENEW_MARGIN, _RENEW_MIN)
        return token

    async def _request(
        self, method: str, route: str, key_id: str | None, where: str, **kwargs: Any
    ) -> tuple[int, Any]:
        try:
            async with self._http().request(method, self.site_url + route, **kwargs) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                return response.status, body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.error(key_id, "unreachable", f"{where}: {type(exc).__name__}") from exc

    def _check(self, status: int, body: Any, key_id: str | None, where: str) -> dict[str, Any]:
        if 200 <= status < 300 and isinstance(body, dict):
            return body
        message = body.get("message", "") if isinstance(body, dict) else ""
        detail = f"{where}: HTTP {status}" + (f": {safe_detail(str(message))}" if message else "")
        if 200 <= status < 300:
            raise self.error(key_id, "malformed", f"{where}: answer is not a JSON object")
        if status == 404:
            raise self.error(key_id, "not_found", detail)
        if status in (401, 403):
            raise self.error(key_id, "denied", detail)
        if status in (400, 422):
            raise self.error(key_id, "config", detail)
        raise self.error(key_id, "unreachable", detail)
