"""Configuration of the provider simulator: keys, limits, faults and content, from Python or JSON.

A JSON file for ``python -m router simulate-providers --config FILE`` has the same shape as
:class:`SimulatorConfig`::

    {"seed": 7,
     "keys": [{"key_id": "k1", "secret": "sk-sim-k1-0000000000000000", "providers": ["openai"],
               "rpm": 60, "tpm": 40000, "rpd": 1000, "strict": false, "quota_group": "proj-a",
               "faults": {"error_rate": 0.1}}],
     "faults": {"latency_ms": 20, "latency_jitter_ms": 10},
     "completion_tokens": 24, "refund_unused": true}

Errors name the file and the field (``sim.json: keys.0.rpm: ...``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernel.errors import ConfigError

SimProvider = Literal["openai", "azure", "anthropic", "gemini"]
ALL_PROVIDERS: tuple[SimProvider, ...] = ("openai", "azure", "anthropic", "gemini")

#: Calendar of each provider's per-day quota (Gemini resets at midnight Pacific time).
DAY_RESET_TZ: dict[str, str] = {
    "gemini": "America/Los_Angeles",
    "openai": "UTC",
    "azure": "UTC",
    "anthropic": "UTC",
}


class FaultConfig(BaseModel):
    """Injected faults. Rates are probabilities per request; at most one fault hits a request.

    ``latency_ms`` + a random part (``latency_jitter_ms``: uniform in [0, jitter], or exponential
    with that mean) delays every answer; ``stream_chunk_delay_ms`` spaces stream chunks.
    Faults answered before admission (not charged to the key's limits): ``spurious_429_rate``,
    ``overload_rate`` (Anthropic 529, OpenAI/Gemini 503), ``error_rate`` (``error_status``, 5xx)
    and ``reset_rate`` (the connection is dropped without an answer). Faults after admission
    (charged): ``timeout_rate`` (no answer for ``hang_seconds``), ``malformed_rate`` (a body that
    is not JSON) and ``stream_cut_rate`` (a stream stops half-way without its end events).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(default=0.0, ge=0.0)
    latency_jitter_ms: float = Field(default=0.0, ge=0.0)
    latency_distribution: Literal["uniform", "exponential"] = "uniform"
    stream_chunk_delay_ms: float = Field(default=0.0, ge=0.0)
    spurious_429_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    overload_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    error_status: int = Field(default=500, ge=500, le=599)
    reset_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    malformed_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    stream_cut_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    hang_seconds: float = Field(default=300.0, gt=0.0)

    @model_validator(mode="after")
    def _rates_sum_to_at_most_one(self) -> FaultConfig:
        total = sum(getattr(self, name) for name in RATE_FIELDS)
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"fault rates add up to {total:.3f}; at most 1 (one fault per request)"
            )
        return self

    def merged(self, overrides: dict[str, Any] | None) -> FaultConfig:
        """This configuration with ``overrides`` (a partial FaultConfig) on top."""
        if not overrides:
            return self
        return FaultConfig.model_validate({**self.model_dump(), **overrides})


#: Fault rates in the order a request's one random draw is compared against them.
PRE_ADMISSION_FAULTS = ("spurious_429_rate", "overload_rate", "error_rate", "reset_rate")
POST_ADMISSION_FAULTS = ("timeout_rate", "malformed_rate", "stream_cut_rate")
RATE_FIELDS = PRE_ADMISSION_FAULTS + POST_ADMISSION_FAULTS


def check_fault_overrides(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validate a partial fault configuration (unknown names and bad values are errors)."""
    if value is None:
        return None
    unknown = sorted(set(value) - set(FaultConfig.model_fields))
    if unknown:
        raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
    FaultConfig().merged(value)
    return dict(value)


class ModelLimits(BaseModel):
    """Limits of one model on a key, replacing the key's own for that model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    rpd: int | None = Field(default=None, ge=1)
    itpm: int | None = Field(default=None, ge=1)
    otpm: int | None = Field(default=None, ge=1)


class SimKey(BaseModel):
    """One API key the simulator accepts.

    Limits apply per quota group (default: the key itself) and model, like OpenAI's and Gemini's
    per-project limits. ``strict`` adds a sliding 60-second window on top of the token buckets.
    ``models``: the only models this key may call (glob patterns allowed); others get 404.
    """

    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=8)
    key_id: str = Field(default="", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")
    providers: list[SimProvider] = Field(default_factory=lambda: list(ALL_PROVIDERS))
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    rpd: int | None = Field(default=None, ge=1)
    itpm: int | None = Field(default=None, ge=1)
    otpm: int | None = Field(default=None, ge=1)
    quota_group: str | None = None
    strict: bool = False
    models: list[str] | None = None
    model_limits: dict[str, ModelLimits] = Field(default_factory=dict)
    revoked: bool = False
    faults: dict[str, Any] | None = None
    day_reset_tz: str | None = None

    @model_validator(mode="after")
    def _default_key_id(self) -> SimKey:
        if not self.key_id:
            self.key_id = "key-" + fingerprint(self.secret)[:8]
        return self

    @field_validator("faults")
    @classmethod
    def _faults(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_fault_overrides(value)

    @field_validator("day_reset_tz")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def group(self) -> str:
        return self.quota_group or self.key_id

    def limits_for(self, model: str) -> ModelLimits:
        specific = self.model_limits.get(model)
        return specific or ModelLimits(
            rpm=self.rpm, tpm=self.tpm, rpd=self.rpd, itpm=self.itpm, otpm=self.otpm
        )

    def __repr__(self) -> str:  # the secret never appears in a repr
        limits = f"rpm={self.rpm}, tpm={self.tpm}, rpd={self.rpd}"
        return f"SimKey(key_id={self.key_id!r}, providers={self.providers}, {limits})"

    __str__ = __repr__


class SimulatorConfig(BaseModel):
    """Everything the simulator does. See docs/simulator.md for each field."""

    model_config = ConfigDict(extra="forbid")

    keys: list[SimKey] = Field(default_factory=list)
    faults: FaultConfig = Field(default_factory=FaultConfig)
    seed: int = 0
    completion_tokens: int = Field(default=24, ge=0, le=100_000)
    stream_chunk_tokens: int = Field(default=4, ge=1)
    refund_unused: bool = True
    window_seconds: float = Field(default=60.0, gt=0)
    models: list[str] | None = None
    context_windows: dict[str, int] = Field(default_factory=dict)
    max_output_tokens: dict[str, int] = Field(default_factory=dict)
    default_context_window: int = Field(default=128_000, ge=1)
    content_filter_phrase: str = Field(default="SIM_CONTENT_FILTER", min_length=1)
    request_log_size: int = Field(default=1000, ge=0)
    open_access: bool = False

    @model_validator(mode="after")
    def _unique_keys(self) -> SimulatorConfig:
        ids: set[str] = set()
        secrets: set[str] = set()
        for index, key in enumerate(self.keys):
            if key.secret in secrets:
                raise ValueError(f"keys.{index}: the same secret is configured twice")
            if key.key_id in ids:
                raise ValueError(f"keys.{index}: key_id {key.key_id!r} is used twice")
            ids.add(key.key_id)
            secrets.add(key.secret)
        return self


def fingerprint(secret: str) -> str:
    """A stable, non-reversible identifier of a secret for logs and stats."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def load_config(path: str | os.PathLike[str]) -> SimulatorConfig:
    """Read a JSON configuration file; errors name the file and the field."""
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found", source=source) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON ({exc.msg} at line {exc.lineno})", source=source
        ) from None
    return parse_config(data, source=source)


def parse_config(data: Any, *, source: str = "simulator config") -> SimulatorConfig:
    try:
        return SimulatorConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"])
        raise ConfigError(err["msg"], source=source, field=where or None) from None
