"""What a key is: ``APIKey`` (the fields of documents 003/004 plus what routing needs).

An ``APIKey`` is metadata only. Its secret lives in a secret store and is fetched separately, so a
key can be logged, shown in status answers and saved back to keys.json without leaking anything.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from kernel.providers import provider_of_model as provider_of_model
from kernel.text import control_char_problem

Provider = Literal["openai", "anthropic", "gemini", "azure"]

#: Key ids go into Redis hash fields and log lines: a conservative alphabet, no separators we use.
KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$"
MODEL_PATTERN = r"^[A-Za-z0-9*?\[\]][A-Za-z0-9_.:/*?\[\]@+-]{0,199}$"

#: Calendar of each provider's per-day quota (document 003: Gemini resets at midnight Pacific).
DAY_RESET_TZ: dict[str, str] = {
    "gemini": "America/Los_Angeles",
    "openai": "UTC",
    "azure": "UTC",
    "anthropic": "UTC",
}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class ModelBinding(BaseModel):
    """One model a key serves (document 002's ``priority_models`` entries)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=MODEL_PATTERN)
    weight: float = Field(1.0, gt=0)
    priority: int = Field(1, ge=1, le=100)

    @property
    def is_pattern(self) -> bool:
        return any(ch in self.model for ch in "*?[")

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.model) if self.is_pattern else model == self.model


class APIKey(BaseModel):
    """Metadata of one provider API key.

    ``quota_group``: keys that share one provider quota (OpenAI and Gemini limit per project, not
    per key); the limits of a group and model are enforced together. Default: the key alone.
    ``models``: the models the key serves with weight and priority; default ``model_name`` with the
    key's own ``weight`` and ``priority``. Patterns (``gpt-4o*``, ``*``) match requested models.
    ``rpm_burst``/``tpm_burst``: how much of a limit may be spent at once (GCRA burst); default the
    whole limit, refilled continuously. ``itpm``/``otpm``: separate input and output token limits
    per minute (Anthropic's). ``learn_limits`` (default on): adopt the limits the provider reports
    where none is configured or the configured one is higher (keys/learned.py). ``strict``: additionally, no 60-second window ever exceeds
    the limit. ``secret_ref``: the secret's name in the secret store (default: by key id).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)

    key_id: str = Field(pattern=KEY_ID_PATTERN)
    model_name: str = Field(pattern=MODEL_PATTERN)
    provider: Provider
    rpm: int | None = Field(None, ge=1, validation_alias=AliasChoices("rpm", "rpm_limit"))
    tpm: int | None = Field(None, ge=1, validation_alias=AliasChoices("tpm", "tpm_limit"))
    rpd: int | None = Field(None, ge=1, validation_alias=AliasChoices("rpd", "rpd_limit"))
    itpm: int | None = Field(None, ge=1, validation_alias=AliasChoices("itpm", "itpm_limit"))
    otpm: int | None = Field(None, ge=1, validation_alias=AliasChoices("otpm", "otpm_limit"))
    learn_limits: bool = True
    active: bool = True
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)

    quota_group: str | None = Field(None, pattern=KEY_ID_PATTERN)
    weight: float = Field(1.0, gt=0)
    priority: int = Field(1, ge=1, le=100)
    base_url: str | None = None
    models: list[ModelBinding] = Field(
        default_factory=list, validation_alias=AliasChoices("models", "priority_models")
    )
    rpm_burst: int | None = Field(None, ge=1)
    tpm_burst: int | None = Field(None, ge=1)
    strict: bool = False
    day_reset_tz: str | None = None
    secret_ref: str | None = None
    api_version: str | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_as_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @field_validator("tags")
    @classmethod
    def _plain_tags(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            problem = control_char_problem(name) or control_char_problem(text)
            if problem is not None:
                raise ValueError(f"tag {name!r} {problem}")
        return value

    @field_validator("secret_ref", "api_version", "base_url", mode="before")
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        problem = control_char_problem(value) if isinstance(value, str) else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("day_reset_tz")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _check_bursts(self) -> APIKey:
        if self.rpm_burst is not None and self.rpm is None:
            raise ValueError("rpm_burst needs rpm")
        if self.tpm_burst is not None and self.tpm is None:
            raise ValueError("tpm_burst needs tpm")
        seen: set[str] = set()
        for binding in self.models:
            if binding.model in seen:
                raise ValueError(f"model {binding.model!r} is listed twice in models")
            seen.add(binding.model)
        return self

    # -- derived -----------------------------------------------------------------------------
    @property
    def group(self) -> str:
        """The quota group: keys of one group share one budget per model."""
        return self.quota_group or self.key_id

    @property
    def bindings(self) -> list[ModelBinding]:
        if self.models:
            return list(self.models)
        return [ModelBinding(model=self.model_name, weight=self.weight, priority=self.priority)]

    def binding_for(self, model: str) -> ModelBinding | None:
        """How this key serves ``model`` (exact names win over patterns); None if it does not."""
        exact = next((b for b in self.bindings if not b.is_pattern and b.model == model), None)
        if exact is not None:
            return exact
        return next((b for b in self.bindings if b.is_pattern and b.matches(model)), None)

    @property
    def reset_tz(self) -> str:
        return self.day_reset_tz or DAY_RESET_TZ.get(self.provider, "UTC")

    def metadata(self) -> dict[str, Any]:
        """The key as saved to keys.json: metadata only, unset optional fields left out."""
        data = self.model_dump(mode="json", exclude_none=True, by_alias=False)
        if not data.get("models"):
            data.pop("models", None)
        if not data.get("tags"):
            data.pop("tags", None)
        if data.get("learn_limits") is True:  # the default
            data.pop("learn_limits")
        return data

    def __repr__(self) -> str:
        return (
            f"APIKey(key_id={self.key_id!r}, provider={self.provider!r}, "
            f"model_name={self.model_name!r}, rpm={self.rpm}, tpm={self.tpm}, rpd={self.rpd}, "
            f"active={self.active})"
        )

    __str__ = __repr__


#: The model a key from a provider's environment variable serves by default.
DEFAULT_MODELS: dict[str, str] = {
    "openai": "gpt-4o-mini",
    "azure": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
    "gemini": "gemini-2.0-flash",
}


def key_serves(key: APIKey, model: str) -> ModelBinding | None:
    """The binding by which ``key`` serves ``model``, or None.

    A pattern binding (``*``, ``gpt-*``) never lends a key to another provider's well-known model:
    an OpenAI key bound to ``*`` serves ``gpt-4o`` and ``my-finetune`` but not ``claude-3-opus``.
    """
    binding = key.binding_for(model)
    if binding is None or not binding.is_pattern:
        return binding
    return binding if _lends(key, provider_of_model(model)) else None


#: Separators of a pattern index's name (``gpt-4o*&gpt-*#openai``): not in MODEL_PATTERN's alphabet.
INDEX_JOIN, INDEX_OWNER = "&", "#"


def is_pattern_index(index: str) -> bool:
    """True for the name of a pattern index (see ``model_index``), False for a model's own name."""
    return any(ch in index for ch in "*?[")


def model_index(keys: Iterable[APIKey], model: str) -> str:
    """The index (selection sets, model record) a requested ``model`` is served from.

    A model some key names exactly, or that no key serves, is its own index. A model reached only
    through pattern bindings shares the index of every name reached through the same patterns:
    the patterns joined by ``&``, and ``#<provider>`` when the name belongs to a well-known
    provider (that decides which keys ``key_serves`` lends). The number of indexes is bounded by
    the configuration, whatever names clients send.
    """
    patterns: set[str] = set()
    for key in keys:
        binding = key_serves(key, model)
        if binding is None:
            continue
        if not binding.is_pattern:
            return model
        patterns.add(binding.model)
    if not patterns:
        return model
    owner = provider_of_model(model)
    return INDEX_JOIN.join(sorted(patterns)) + (INDEX_OWNER + owner if owner else "")


def index_label(index: str) -> str:
    """The index's patterns without the provider part (a bounded metrics label)."""
    return index.split(INDEX_OWNER, 1)[0]


def index_bindings(keys: Iterable[APIKey], index: str) -> list[tuple[APIKey, ModelBinding]]:
    """(key, binding) of every key serving the names of ``index``, in configuration order.

    For a model's own name: ``key_serves`` of every key (a key serving it through a pattern is
    charged under its pattern), but nothing when no key names it exactly (it is then not an
    index: see ``model_index``). For a pattern index: each key's first binding among the index's
    patterns, when the key lends itself to the index's provider (the same answer ``key_serves``
    gives for every name of the index).
    """
    if not is_pattern_index(index):
        found = [(key, key_serves(key, index)) for key in keys]
        served = [(key, b) for key, b in found if b is not None]
        return served if any(not b.is_pattern for _, b in served) else []
    text, _, owner = index.partition(INDEX_OWNER)
    patterns = set(text.split(INDEX_JOIN))
    out = []
    for key in keys:
        binding = next((b for b in key.bindings if b.is_pattern and b.model in patterns), None)
        if binding is not None and _lends(key, owner or None):
            out.append((key, binding))
    return out


def _lends(key: APIKey, owner: str | None) -> bool:
    return owner is None or owner == key.provider or {owner, key.provider} == {"openai", "azure"}
