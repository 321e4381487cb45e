"""A gateway on loopback over the provider simulator and real Redis, for the gateway's tests.

``GatewayHarness`` writes a keys.json whose keys point at the simulator (secrets in an injected
environment, made at run time), builds the RequestRouter and the Gateway on it, and serves it on a
free port. Helpers create virtual keys, call the admin API and make official ``openai`` clients.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry

from kernel.settings import Settings
from keys.manager import KeyManager
from router.gateway import Gateway, GatewayServer, VirtualKeySpec
from router.request_router import RequestRouter
from router.simulator import ProviderSimulator, SimKey, SimulatorConfig
from tests.helpers import PoolShards
from tests.keygen import openai_project_key

MODEL = "gpt-4o-mini"


def env_name(key_id: str) -> str:
    return "API_KEY_" + re.sub(r"[^A-Z0-9]", "_", key_id.upper())


@dataclass
class PoolKey:
    """One provider key of the test pool: in keys.json (metadata) and in the simulator (limits)."""

    key_id: str
    rpm: int | None = 600
    tpm: int | None = None
    models: list[str] = field(default_factory=lambda: [MODEL])
    tags: dict[str, str] = field(default_factory=dict)
    secret: str = field(default_factory=openai_project_key)
    provider: str = "openai"

    def entry(self, base_url: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key_id": self.key_id,
            "provider": self.provider,
            "model_name": self.models[0],
            "models": [{"model": m} for m in self.models],
            "base_url": base_url,
        }
        if self.rpm:
            out["rpm"] = self.rpm
        if self.tpm:
            out["tpm"] = self.tpm
        if self.tags:
            out["tags"] = self.tags
        return out

    def sim_key(self) -> SimKey:
        return SimKey(
            key_id=self.key_id,
            secret=self.secret,
            providers=[self.provider],
            rpm=self.rpm,
            tpm=self.tpm,
        )


def default_pool() -> list[PoolKey]:
    return [PoolKey("pool-a"), PoolKey("pool-b")]


class GatewayHarness:
    """Simulator + keys.json + RequestRouter + Gateway on a free loopback port."""

    def __init__(
        self,
        tmp_path: Path,
        redis_url: str | None,
        prefix: str,
        *,
        pool: list[PoolKey] | None = None,
        routing: dict[str, Any] | None = None,
        sim_config: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        self.tmp_path = tmp_path
        self.pool = pool if pool is not None else default_pool()
        self.routing = routing
        self.sim_config = sim_config or {}
        self.master = "master-" + openai_project_key()[8:40]
        values: dict[str, Any] = {
            "REDIS_KEY_PREFIX": prefix,
            "ROUTER_MASTER_KEY": self.master,
            "USER_RPM_DEFAULT": 100_000,
            "GLOBAL_RPM_MAX": 1_000_000,
            "RESERVE_WAIT_SECONDS": 0,
            "KEY_STORE_PATH": str(tmp_path / "keys.json"),
        }
        if redis_url:
            values["REDIS_URL"] = redis_url
        if PoolShards.value != 1:  # the test's pool_shards (tests/conftest.py)
            values["POOL_SHARDS"] = PoolShards.value
        values.update(overrides)
        self.settings = Settings.from_env({}, **values)
        self.sim: ProviderSimulator | None = None
        self.server: GatewayServer | None = None
        self.environ: dict[str, str] = {}

    def write_keys(self, base_url: str) -> None:
        """keys.json: each key at the simulator's URL for its provider (``base_url``: OpenAI's)."""
        sim = self.sim
        document: dict[str, Any] = {
            "keys": [
                k.entry(
                    sim.base_url_for(k.provider) if sim and k.provider != "openai" else base_url
                )
                for k in self.pool
            ]
        }
        if self.routing:
            document["routing"] = self.routing
        (self.tmp_path / "keys.json").write_text(json.dumps(document))
        self.environ = {env_name(k.key_id): k.secret for k in self.pool}

    def build_gateway(self) -> Gateway:
        manager = KeyManager(settings=self.settings, environ=self.environ)
        router = RequestRouter(manager, settings=self.settings)
        registry = CollectorRegistry()  # each gateway counts on its own, as each process does
        return Gateway(router, settings=self.settings, registry=registry, owns_router=True)

    async def start(self) -> GatewayHarness:
        config = SimulatorConfig(keys=[k.sim_key() for k in self.pool], **self.sim_config)
        self.sim = ProviderSimulator(config)
        await self.sim.start()
        self.write_keys(self.sim.base_url_for("openai"))
        self.server = GatewayServer(self.build_gateway())
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.sim is not None:
            await self.sim.stop()

    async def __aenter__(self) -> GatewayHarness:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def gateway(self) -> Gateway:
        assert self.server is not None
        return self.server.gateway

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    async def vkey(self, **spec: Any) -> str:
        _, secret = await self.gateway.vkeys.create(VirtualKeySpec(**spec))
        return secret

    def client(self, api_key: str, **kwargs: Any) -> openai.AsyncOpenAI:
        kwargs.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, **kwargs)

    def sync_client(self, api_key: str, **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=self.base_url, api_key=api_key, **kwargs)

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, CIMultiDict[str]]:
        """(status, parsed JSON body or text, headers) of one raw HTTP request."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, json=body, headers=sent) as response,
        ):
            text = await response.text()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = text
            return response.status, parsed, CIMultiDict(response.headers)

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, parsed, _ = await self.request(
            method, "/api/v1/admin" + path, token=self.master, body=body
        )
        return status, parsed


def chat_body(content: str = "Hello!", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def assert_error_shape(body: Any) -> dict[str, Any]:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)
    return dict(error)
