"""A key pool wired to the provider simulator: the same keys on both sides, secrets made at run time.

async with sim_router(settings, tmp_path, [PoolKey("a", rpm=5)]) as (router, sim):
    answer = await router.send_one_shot("hi", model_preference="gpt-4o-mini")
"""

from __future__ import annotations

import contextlib
import json
import secrets as pysecrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel.settings import Settings
from keys.manager import KeyManager
from router.request_router import RequestRouter
from router.simulator import FaultConfig, ProviderSimulator, SimKey, SimulatorConfig
from tests.keys.manager_helpers import env_name

MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
    "gemini": "gemini-2.0-flash",
}


@dataclass
class PoolKey:
    key_id: str
    provider: str = "openai"
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    itpm: int | None = None  # separate input and output token limits (Anthropic's)
    otpm: int | None = None
    #: False: the router is not told the limits (the simulator keeps them; keys/learned.py)
    told: bool = True
    strict: bool = False
    models: list[str] | None = None  # router-side bindings (default: the provider's model)
    faults: dict[str, Any] | None = None  # simulator-side faults for this key
    revoked: bool = False
    base_url: str | None = None  # override (e.g. a closed port)
    extra: dict[str, Any] = field(default_factory=dict)  # router-side entry fields (override)
    secret: str = field(default_factory=lambda: "sk-sim-" + pysecrets.token_urlsafe(18))

    def entry(self, sim: ProviderSimulator) -> dict[str, Any]:
        models = self.models or [MODELS[self.provider]]
        out: dict[str, Any] = {
            "key_id": self.key_id,
            "provider": self.provider,
            "model_name": models[0],
            "models": [{"model": m} for m in models],
            "base_url": self.base_url or sim.base_url_for(self.provider),
            "strict": self.strict,
        }
        for name in ("rpm", "tpm", "rpd", "itpm", "otpm"):
            if getattr(self, name) is not None and self.told:
                out[name] = getattr(self, name)
        out.update(self.extra)  # router-side fields, limits included (the simulator keeps its own)
        return out

    def sim_key(self) -> SimKey:
        return SimKey(
            key_id=self.key_id,
            secret=self.secret,
            providers=[self.provider],
            rpm=self.rpm,
            tpm=self.tpm,
            rpd=self.rpd,
            itpm=self.itpm,
            otpm=self.otpm,
            strict=self.strict,
            faults=self.faults,
            revoked=self.revoked,
        )


def pool_files(
    tmp_path: Path,
    sim: ProviderSimulator,
    keys: list[PoolKey],
    routing: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [k.entry(sim) for k in keys], "routing": routing or {}}))
    return path, {env_name(k.key_id): k.secret for k in keys}


@contextlib.asynccontextmanager
async def sim_router(
    settings: Settings,
    tmp_path: Path,
    keys: list[PoolKey],
    *,
    routing: dict[str, Any] | None = None,
    sim_options: dict[str, Any] | None = None,
    faults: FaultConfig | None = None,
) -> AsyncIterator[tuple[RequestRouter, ProviderSimulator]]:
    config = SimulatorConfig(
        keys=[k.sim_key() for k in keys], faults=faults or FaultConfig(), **(sim_options or {})
    )
    async with ProviderSimulator(config) as sim:
        path, env = pool_files(tmp_path, sim, keys, routing)
        manager = KeyManager(key_store_path=path, settings=settings, environ=env)
        router = RequestRouter(manager, settings=settings)
        try:
            await router.start()
            yield router, sim
        finally:
            await router.close()


@contextlib.asynccontextmanager
async def unstarted_router(
    config: Settings, tmp_path: Path, keys: list[PoolKey]
) -> AsyncIterator[RequestRouter]:
    """A RequestRouter on the simulator whose first use is its first call (no start())."""
    async with ProviderSimulator(SimulatorConfig(keys=[k.sim_key() for k in keys])) as sim:
        path, env = pool_files(tmp_path, sim, keys)
        router = RequestRouter(
            KeyManager(key_store_path=path, settings=config, environ=env), settings=config
        )
        try:
            yield router
        finally:
            await router.close()
