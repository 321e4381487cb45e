"""Which model names the gateway answers for: ``GET /v1/models`` and the 404 for unknown models.

A model is served when a key names it, when a key's pattern binding (``*``, ``gpt-4o*``) covers it
(the catalog's well-known models are listed for patterns), or when a routing alias leads to a
served model. The view is rebuilt from the key manager at most every few seconds, and at once
(rate-limited) when a name is not found, so keys added at run time appear without restart while a
request never pays for a scan of a large pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kernel.lru import LRU
from keys.models import APIKey, key_serves
from router.providers.catalog import all_models
from router.routing import RoutingTable

#: Seconds a view is trusted; a miss rebuilds it sooner, at most every MISS_REBUILD_SECONDS.
VIEW_SECONDS = 30.0
MISS_REBUILD_SECONDS = 0.5
LISTING_SECONDS = 1.0
KNOWN_LIMIT = 10_000


@dataclass
class _View:
    exact: dict[str, str] = field(default_factory=dict)  # model -> provider
    patterns: list[APIKey] = field(default_factory=list)  # one key per distinct binding set
    built_at: float = 0.0

    def served(self, model: str) -> bool:
        return model in self.exact or any(key_serves(k, model) for k in self.patterns)


class ModelCatalog:
    """Served models and aliases of one router, kept fresh cheaply."""

    def __init__(
        self, keys: Callable[[], Mapping[str, APIKey]], routing: Callable[[], RoutingTable]
    ) -> None:
        self._keys = keys
        self._routing = routing
        self._view = _View()
        self._known: LRU[str, bool] = LRU(KNOWN_LIMIT)  # keyed by client input: bounded

    def _rebuild(self) -> _View:
        view = _View(built_at=time.monotonic())
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for key in self._keys().values():
            patterns = tuple(sorted(b.model for b in key.bindings if b.is_pattern))
            for binding in key.bindings:
                if not binding.is_pattern:
                    view.exact.setdefault(binding.model, key.provider)
            if patterns and (key.provider, patterns) not in seen:
                seen.add((key.provider, patterns))
                view.patterns.append(key)
        self._view = view
        self._known.clear()
        return view

    def _fresh(self, seconds: float) -> _View:
        if time.monotonic() - self._view.built_at > seconds:
            return self._rebuild()
        return self._view

    def known(self, model: str) -> bool:
        """True when some key could serve ``model`` (itself, by pattern, or through an alias)."""
        self._fresh(VIEW_SECONDS)
        found = self._known.get(model)
        if found is None:
            found = self._resolves(model)
            if not found and time.monotonic() - self._view.built_at > MISS_REBUILD_SECONDS:
                self._rebuild()
                found = self._resolves(model)
            self._known.put(model, found)
        return found

    def listed(self, model: str) -> bool:
        """True when a key names ``model`` exactly or it is an alias (no pattern matching)."""
        return model in self._fresh(VIEW_SECONDS).exact or model in self._routing().advertised()

    def _resolves(self, model: str) -> bool:
        view = self._view
        return any(view.served(m) for m in self._routing().resolve(model, view.served))

    def listing(self, allowed: Callable[[str], bool] | None = None) -> list[tuple[str, str]]:
        """(model, owner) of every listable model: served names, catalog models covered by a
        pattern, and aliases; filtered by ``allowed`` (a virtual key's models)."""
        view = self._fresh(LISTING_SECONDS)
        out = dict(view.exact)
        for info in all_models():
            if info.name not in out and any(key_serves(k, info.name) for k in view.patterns):
                out[info.name] = info.provider
        for alias in self._routing().advertised():
            if alias not in out and self._resolves(alias):
                out[alias] = "llm-router"
        return sorted((m, p) for m, p in out.items() if allowed is None or allowed(m))
