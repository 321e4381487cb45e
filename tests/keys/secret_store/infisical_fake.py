"""A loopback fake of Infisical's Universal Auth login and raw secrets routes (API v1/v3).

Answers with the shapes of the public API (as the official SDKs parse them):

- ``POST /api/v1/auth/universal-auth/login`` ``{clientId, clientSecret}`` ->
  ``{accessToken, expiresIn, accessTokenMaxTTL, tokenType}``
- ``GET /api/v3/secrets/raw?workspaceId&environment&secretPath``
  -> ``{secrets: [...], imports: []}``
- ``GET /api/v3/secrets/raw/{name}?...`` -> ``{secret: {...}}``
- errors: ``{reqId, statusCode, message, error}`` with 401, 403, 404

Knobs for tests: :attr:`outage` (answer 503 to everything), :meth:`revoke_tokens` (the next call
gets 401 and must log in again), :attr:`hide_values` (an identity without read-value permission).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.servers import free_port


@dataclass
class InfisicalFake:
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    project_id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    environment: str = "production"
    folders: dict[str, dict[str, str]] = field(default_factory=lambda: {"/": {}})
    expires_in: int = 7200
    outage: bool = False
    hide_values: bool = False
    port: int = field(default_factory=free_port)
    logins: int = 0
    calls: list[str] = field(default_factory=list)
    _tokens: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put(self, path: str, name: str, value: str) -> None:
        self.folders.setdefault(path, {})[name] = value

    def delete(self, path: str, name: str) -> None:
        del self.folders[path][name]

    def revoke_tokens(self) -> None:
        self._tokens.clear()

    async def start(self) -> None:
        app = web.Application(middlewares=[self._outage_middleware])
        app.router.add_post("/api/v1/auth/universal-auth/login", self._login)
        app.router.add_get("/api/v3/secrets/raw", self._list)
        app.router.add_get("/api/v3/secrets/raw/{name}", self._get)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _outage_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        self.calls.append(request.path)
        if self.outage:
            return _error(503, "ServiceUnavailable", "Service temporarily unavailable")
        return await handler(request)

    async def _login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clientId") != self.client_id or body.get("clientSecret") != self.client_secret:
            return _error(401, "UnauthorizedError", "Invalid credentials")
        self.logins += 1
        token = secrets.token_urlsafe(32)
        self._tokens.add(token)
        return web.json_response(
            {
                "accessToken": token,
                "expiresIn": self.expires_in,
                "accessTokenMaxTTL": 2592000,
                "tokenType": "Bearer",
            }
        )

    def _check(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header[7:] not in self._tokens:
            return _error(401, "UnauthorizedError", "Token missing or invalid")
        query = request.query
        if query.get("workspaceId") != self.project_id:
            return _error(
                404, "NotFound", f"Project with ID '{query.get('workspaceId')}' not found"
            )
        if query.get("environment") != self.environment:
            return _error(
                404,
                "NotFound",
                f"Environment with slug '{query.get('environment')}' in project with ID "
                f"'{self.project_id}' not found",
            )
        if query.get("secretPath", "/") not in self.folders:
            return _error(
                404, "NotFound", f"Folder with path '{query.get('secretPath')}' not found"
            )
        return None

    async def _list(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        path = request.query.get("secretPath", "/")
        items = [
            self._secret(path, name, value) for name, value in sorted(self.folders[path].items())
        ]
        return web.json_response({"secrets": items, "imports": []})

    async def _get(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused is not None:
            return refused
        path = request.query.get("secretPath", "/")
        name = request.match_info["name"]
        if name not in self.folders[path]:
            return _error(404, "NotFound", f"Secret with name '{name}' not found")
        return web.json_response({"secret": self._secret(path, name, self.folders[path][name])})

    def _secret(self, path: str, name: str, value: str) -> dict[str, object]:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        secret_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{path}/{name}"))
        return {
            "id": secret_id,
            "_id": secret_id,
            "workspace": self.project_id,
            "environment": self.environment,
            "version": 1,
            "type": "shared",
            "secretKey": name,
            "secretValue": "<hidden-by-infisical>" if self.hide_values else value,
            "secretValueHidden": self.hide_values,
            "secretComment": "",
            "secretReminderNote": None,
            "secretReminderRepeatDays": None,
            "skipMultilineEncoding": False,
            "secretPath": path,
            "createdAt": now,
            "updatedAt": now,
            "tags": [],
            "secretMetadata": [],
        }


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response(
        {
            "reqId": f"req-{uuid.uuid4().hex[:14]}",
            "statusCode": status,
            "message": message,
            "error": error,
        },
        status=status,
    )
