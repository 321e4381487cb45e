"""Model routing: aliases, wildcards, fallback chains and context-window fallback (document 002).

Configured in keys.json's ``routing`` section (or a file named by ``ROUTING_CONFIG_PATH``)::

    "routing": {
      "aliases":   {"gpt-4": "gemini-2.0-flash",
                    "claude-*": ["claude-3-5-haiku-latest"],
                    "*": ["gemini-2.0-flash", "gemini-2.0-flash-exp", "gemini-1.5-pro-latest"]},
      "fallbacks": {"gemini-2.0-flash": ["gemini-2.0-flash-exp"]},
      "context_fallbacks": {"gpt-4o-mini": ["gpt-4.1-mini"]}
    }

A requested model resolves to an ordered chain of models:

1. an alias with exactly its name wins;
2. else the model itself, when some key serves it;
3. else the first alias pattern that matches (``*`` last);
4. else the model itself (and the pool answers that no key serves it).

Each model of the chain is followed by its own ``fallbacks``, without repeats. The router tries every
key of one model (rotation) before moving to the next model. On a context-length error (or when
the prompt is known to be larger than the model's window) it moves to ``context_fallbacks`` of that
model, or else to the smallest served model of the same provider whose window holds the prompt.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kernel.errors import ConfigError
from router.providers.catalog import context_window, is_embedding_model

ModelList = list[str]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    aliases: dict[str, ModelList] = Field(default_factory=dict)
    fallbacks: dict[str, ModelList] = Field(default_factory=dict)
    context_fallbacks: dict[str, ModelList] = Field(default_factory=dict)
    default_model: str | None = None

    @field_validator("aliases", "fallbacks", "context_fallbacks", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _as_list(v) for k, v in value.items()}
        return value

    @field_validator("aliases", "fallbacks", "context_fallbacks")
    @classmethod
    def _non_empty(cls, value: dict[str, ModelList]) -> dict[str, ModelList]:
        for name, targets in value.items():
            if not targets or any(not t or any(ch in t for ch in "*?[") for t in targets):
                raise ValueError(f"{name!r} must name one or more models (no patterns)")
        return value


class RoutingTable:
    """Resolves requested model names to chains of models the pool serves."""

    def __init__(self, config: RoutingConfig | None = None) -> None:
        self.config = config or RoutingConfig()
        aliases = self.config.aliases
        self._exact = {k: v for k, v in aliases.items() if not _is_pattern(k)}
        # patterns in the order given, the catch-all last
        self._patterns = sorted(
            ((k, v) for k, v in aliases.items() if _is_pattern(k)), key=lambda kv: kv[0] == "*"
        )

    @classmethod
    def from_section(
        cls, section: dict[str, Any] | None, *, source: str = "keys.json"
    ) -> RoutingTable:
        try:
            return cls(RoutingConfig.model_validate(section or {}))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = "routing." + ".".join(str(p) for p in err["loc"])
            raise ConfigError(err["msg"], source=source, field=field) from None

    @classmethod
    def from_file(cls, path: str | Path) -> RoutingTable:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("file not found", source=str(path)) from None
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source=str(path)
            ) from None
        return cls.from_section(
            data.get("routing", data) if isinstance(data, dict) else data, source=str(path)
        )

    def resolve(self, model: str, served: Callable[[str], bool]) -> list[str]:
        """The chain of models to try for ``model``; ``served(m)`` tells if some key serves m."""
        if model in self._exact:
            targets = self._exact[model]
        elif served(model):
            targets = [model]
        else:
            targets = next(
                (t for pattern, t in self._patterns if fnmatch.fnmatchcase(model, pattern)), [model]
            )
        chain: list[str] = []
        for target in targets:
            for name in (target, *self.config.fallbacks.get(target, [])):
                if name not in chain:
                    chain.append(name)
        return chain

    def context_fallbacks(
        self, model: str, tokens: int, candidates: Iterable[tuple[str, str]], provider: str
    ) -> list[str]:
        """Larger-window models to try when ``model`` cannot hold ``tokens``: configured first, then
        the smallest served models of the same provider whose window holds the prompt."""
        configured = [m for m in self.config.context_fallbacks.get(model, []) if m != model]
        fitting = sorted(
            (window, name)
            for name, owner in candidates
            if owner == provider
            and name != model
            and not is_embedding_model(name)
            and (window := context_window(name) or 0) >= tokens
        )
        out = list(configured)
        for _, name in fitting:
            if name not in out:
                out.append(name)
        return out

    def advertised(self) -> list[str]:
        """Alias names clients may ask for (``/v1/models``), patterns excluded."""
        return sorted(self._exact)


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")
