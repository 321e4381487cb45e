"""An HTTPS fake of Azure Key Vault's secret routes and of the Entra ID token endpoint.

No Key Vault emulator exists, so this answers what the real ``azure-keyvault-secrets`` async client
and azure-identity's ``ClientSecretCredential`` ask for, with the service's shapes:

- ``POST /{tenant}/oauth2/v2.0/token`` (client credentials)
  -> ``{token_type, expires_in, access_token}``
- any vault route without a valid bearer token -> 401 with the ``WWW-Authenticate: Bearer
  authorization="...", resource="https://vault.azure.net"`` challenge, as the service does first
- ``GET /secrets/{name}[/{version}]`` -> ``{value, id, attributes, tags}``; 404 ``SecretNotFound``;
  403 ``Forbidden`` for names in :attr:`forbidden`
- ``GET /secrets`` -> ``{value: [{id, attributes}], nextLink}``

TLS uses a certificate from a trustme test CA; clients get its CA bundle path.
"""

from __future__ import annotations

import secrets
import ssl
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from aiohttp import web

from tests.servers import free_port

VAULT_RESOURCE = "https://vault.azure.net"


@dataclass
class AzureKeyVaultFake:
    tenant_id: str = "00000000-0000-0000-0000-0000000000aa"
    client_id: str = "11111111-1111-1111-1111-1111111111bb"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    secrets: dict[str, str] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    port: int = field(default_factory=free_port)
    challenges: int = 0
    token_requests: int = 0
    authorized_requests: list[str] = field(default_factory=list)
    _tokens: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def vault_url(self) -> str:
        return self.url + "/"

    async def start(self, ca: trustme.CA, ca_path: Path) -> None:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
        app = web.Application()
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/secrets", self._list)
        app.router.add_get("/secrets/{name}", self._get)
        app.router.add_get("/secrets/{name}/", self._get)
        app.router.add_get("/secrets/{name}/{version}", self._get)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=server_ctx).start()
        self.ca_path = ca_path

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- Entra ID ----------------------------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        ok = (
            request.match_info["tenant"] == self.tenant_id
            and form.get("grant_type") == "client_credentials"
            and form.get("client_id") == self.client_id
            and form.get("client_secret") == self.client_secret
        )
        if not ok:
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                    "trace_id": str(uuid.uuid4()),
                },
                status=401,
            )
        if form.get("scope") != f"{VAULT_RESOURCE}/.default":
            return web.json_response({"error": "invalid_scope"}, status=400)
        token = secrets.token_urlsafe(32)
        self._tokens.add(token)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            }
        )

    # -- Key Vault ---------------------------------------------------------------------------------
    def _challenge(self, request: web.Request) -> web.Response | None:
        if "api-version" not in request.query:
            return _error(400, "BadParameter", "The request URI contains an invalid api-version.")
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in self._tokens:
            self.authorized_requests.append(request.path)
            return None
        self.challenges += 1
        response = _error(
            401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."
        )
        response.headers["WWW-Authenticate"] = (
            f'Bearer authorization="{self.url}/{self.tenant_id}", resource="{VAULT_RESOURCE}"'
        )
        return response

    async def _get(self, request: web.Request) -> web.Response:
        denied = self._challenge(request)
        if denied is not None:
            return denied
        name = request.match_info["name"]
        if name in self.forbidden:
            return _error(
                403,
                "Forbidden",
                f"Caller is not authorized to perform action on resource. Action: "
                f"'Microsoft.KeyVault/vaults/secrets/getSecret/action' Resource: 'secrets/{name}'",
                inner="ForbiddenByRbac",
            )
        if name not in self.secrets:
            return _error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name} was not found in this key vault. If you recently "
                "deleted this secret you may be able to recover it using the correct recovery "
                "command.",
            )
        version = request.match_info.get("version") or "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
        return web.json_response(
            {
                "value": self.secrets[name],
                "id": f"{self.url}/secrets/{name}/{version}",
                "attributes": _attributes(),
                "tags": {},
            }
        )

    async def _list(self, request: web.Request) -> web.Response:
        denied = self._challenge(request)
        if denied is not None:
            return denied
        items = [
            {"id": f"{self.url}/secrets/{name}", "attributes": _attributes(), "tags": {}}
            for name in sorted(self.secrets)
        ]
        return web.json_response({"value": items, "nextLink": None})


def _attributes() -> dict[str, object]:
    now = int(time.time())
    return {
        "enabled": True,
        "created": now,
        "updated": now,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    }


def _error(status: int, code: str, message: str, inner: str | None = None) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message}
    if inner:
        body["innererror"] = {"code": inner}
    return web.json_response({"error": body}, status=status)
