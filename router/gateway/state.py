"""One worker's gateway: the router it calls, virtual keys, limits, metrics, readiness, drain.

``Gateway.start()`` starts the RequestRouter (keys loaded, pool indexed in the store). A bad
configuration fails at once; an unreachable store or secret store does not: the worker serves
``/health`` and answers not ready (503) while it retries, so an orchestrator sees why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from kernel.errors import ConfigError, SecretStoreError, StoreError
from kernel.log import get_logger
from kernel.settings import Settings
from router.gateway.limits import RequestLimits
from router.gateway.metrics_view import GatewayMetrics, default_gateway_metrics
from router.gateway.models import ModelCatalog
from router.gateway.vkeys import VirtualKeyStore
from router.request_router import RequestRouter

log = get_logger("router.gateway")

RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0


class Gateway:
    """Everything a worker's handlers share."""

    def __init__(
        self,
        router: RequestRouter | None = None,
        *,
        settings: Settings | None = None,
        registry: CollectorRegistry | None = None,
        owns_router: bool | None = None,
    ) -> None:
        self.settings = settings or (router.settings if router else Settings.from_env())
        self.router = router or RequestRouter(settings=self.settings)
        self.owns_router = router is None if owns_router is None else owns_router
        store = self.router.key_manager.store
        self.vkeys = VirtualKeyStore(store, cache_seconds=self.settings.GATEWAY_VKEY_CACHE_SECONDS)
        self.limits = RequestLimits(store, self.settings)
        self.metrics = default_gateway_metrics() if registry is None else GatewayMetrics(registry)
        self.router.usage.alert_hooks.append(self.metrics.router.observe_budget_alert)
        manager = self.router.key_manager
        self.catalog = ModelCatalog(lambda: manager.keys, lambda: self.router.routing)
        self.ready = False
        self.draining = False
        self.inflight = 0
        self.started_at = time.time()
        self.startup_error: str | None = None
        #: Called once the gateway is ready (keys loaded, router started): ``serve`` tunes the
        #: garbage collector then (router/gateway/server.py).
        self.on_ready: list[Callable[[], None]] = []
        self._retry: asyncio.Task[None] | None = None

    @property
    def store(self) -> Any:
        return self.router.key_manager.store

    async def start(self) -> None:
        """Start the router; ConfigError propagates, store trouble is retried in the background."""
        try:
            await self.router.start()
        except ConfigError:
            raise
        except (StoreError, SecretStoreError) as exc:
            self.startup_error = str(exc)
            log.error("gateway not ready: retrying start", error=str(exc))
            self._retry = asyncio.create_task(self._keep_starting())
            return
        self._became_ready()

    async def _keep_starting(self) -> None:
        pause = RETRY_FIRST_SECONDS
        while True:
            await asyncio.sleep(pause)
            try:
                await self.router.start()
            except (StoreError, SecretStoreError) as exc:
                self.startup_error = str(exc)
                pause = min(RETRY_MAX_SECONDS, pause * 2)
                continue
            except ConfigError as exc:
                self.startup_error = str(exc)
                log.error("gateway cannot start: configuration error", error=str(exc))
                return
            self._became_ready()
            return

    def _became_ready(self) -> None:
        self.ready = True
        self.startup_error = None
        log.info("gateway ready", keys=len(self.router.key_manager.keys))
        for hook in self.on_ready:
            hook()

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
        self.ready = False
        await self.limits.flush()  # the TPM adjustments of the answers sent
        if self.owns_router:
            await self.router.close()
        else:  # the owner closes it; the settles of the calls served here land now
            await self.router.flush()

    def model_label(self, model: str) -> str:
        """A bounded metrics label: a model a key names or an alias; for a name only a pattern
        binding serves, the pattern (``gpt-4o*``); else ``other``."""
        if self.catalog.listed(model):
            return model
        return self.router.key_manager.engine.model_label(model)


GATEWAY = web.AppKey("gateway", Gateway)
