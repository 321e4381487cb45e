"""One typed settings object, read from the environment (the settings tables of documents 003/004).

Every field is named exactly as its environment variable. An empty variable counts as unset
(``REDIS_URL=""`` selects the embedded store, as document 003 describes). A bad value raises
:class:`~kernel.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kernel.env_file import ensure_env_file
from kernel.errors import ConfigError

#: How a key is chosen among those with room (keys/engine.py, lua/lib_pool.lua).
Strategy = Literal["capacity", "round_robin", "random", "least_used", "weighted"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
SecretStoreType = Literal["env", "file", "vault", "aws", "azure", "infisical"]
PROVIDERS = ("openai", "anthropic", "gemini")


class Settings(BaseModel):
    """Product settings. Construct with :meth:`from_env`; fields carry their variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Store
    REDIS_URL: str | None = None
    REDIS_CLUSTER: bool = False
    REDIS_MAX_CONNECTIONS: int = Field(64, ge=1)
    REDIS_TIMEOUT_SECONDS: float = Field(5.0, gt=0)
    REDIS_KEY_PREFIX: str = Field("llmr", pattern=r"^[A-Za-z0-9_.:-]+$")
    #: Shards the key pool is split into (kernel/redis_keys.py): each quota group lives in one,
    #: under its own hash tag, so a Redis Cluster spreads reservations over its masters. 1 = one
    #: slot (today's key names). Every process sharing a pool must use the same value.
    POOL_SHARDS: int = Field(1, ge=1, le=1024)
    #: What a process does when the shared store (REDIS_URL) is unreachable: ``open`` serves on a
    #: local in-process store with every limit divided by ROUTER_PROCESSES (answers say
    #: ``degraded: true``); ``closed`` answers ``store_unavailable``.
    STORE_FAILURE_MODE: Literal["open", "closed"] = "open"
    #: The operator's statement of how many processes share the pool (degraded mode divides each
    #: key's limits by it, so the processes together stay within them).
    ROUTER_PROCESSES: int = Field(1, ge=1)
    #: Conversation turns kept while degraded, written to the shared store when it returns.
    DEGRADED_CONVERSATION_BUFFER: int = Field(5000, ge=0)
    #: When a call's settle is sent (keys/settle_queue.py): ``deferred`` queues it and answers
    #: at once; ``inline`` waits for it before answering.
    SETTLE_MODE: Literal["deferred", "inline"] = "deferred"

    # Keys and secrets
    KEY_STORE_PATH: str | None = None
    ROUTING_CONFIG_PATH: str | None = None
    SECRET_STORE_TYPE: SecretStoreType = "env"
    SECRET_REFRESH_INTERVAL: float = Field(300.0, gt=0)
    SECRETS_FILE: str = "secrets.json"
    ENABLE_KEY_ROTATION: bool | None = None
    LLM_MULTI_KEY_ROUTER_ENABLED: bool | None = None

    # Selection strategy: per provider, then global; None means the documented default.
    KEY_ROTATION_STRATEGY: Strategy | None = None
    OPENAI_KEY_ROTATION_STRATEGY: Strategy | None = None
    ANTHROPIC_KEY_ROTATION_STRATEGY: Strategy | None = None
    GEMINI_KEY_ROTATION_STRATEGY: Strategy | None = None

    # Health
    RATE_LIMIT_COOLDOWN_SECONDS: float = Field(60.0, gt=0)
    COOLDOWN_BACKOFF_FACTOR: float = Field(2.0, ge=1)
    COOLDOWN_MAX_SECONDS: float = Field(900.0, gt=0)
    CIRCUIT_BREAKER_THRESHOLD: int = Field(3, ge=1)
    CIRCUIT_BREAKER_TIMEOUT_SECONDS: float = Field(300.0, gt=0)
    #: Kept for document 001; breakers are no longer reset all at once (docs/configuration.md).
    RESET_BREAKERS_WHEN_ALL_UNHEALTHY: bool = True
    #: A connection that never reached the provider (refused, no route, connect timeout) cools the
    #: key this long, x COOLDOWN_BACKOFF_FACTOR on repeats, up to the max; it counts toward the breaker.
    UNREACHABLE_COOLDOWN_SECONDS: float = Field(5.0, gt=0)
    UNREACHABLE_COOLDOWN_MAX_SECONDS: float = Field(60.0, gt=0)

    # Requests
    DEFAULT_MODEL: str | None = None
    #: Completion tokens reserved when a caller names no limit (also sent as Anthropic's max_tokens).
    EXPECTED_COMPLETION_TOKENS: int = Field(512, ge=1)
    RESERVE_WAIT_SECONDS: float = Field(2.0, ge=0)
    #: A request bound by a rate limit is sent this long after the limit has room for it, so the
    #: varying delay before the provider counts it never finds the provider's bucket short.
    RESERVE_MARGIN_SECONDS: float = Field(0.05, ge=0, le=10)
    RESERVATION_TTL_SECONDS: int = Field(600, ge=10)
    MAX_ATTEMPTS: int = Field(5, ge=1)
    RETRY_BUDGET_SECONDS: float = Field(60.0, gt=0)
    REQUEST_TIMEOUT_SECONDS: float = Field(120.0, gt=0)
    CONNECT_TIMEOUT_SECONDS: float = Field(10.0, gt=0)

    # Conversations
    CONVERSATION_TTL_SECONDS: int = Field(86400, ge=1)
    CONVERSATION_MAX_MESSAGES: int = Field(1000, ge=2)
    CONVERSATION_MAX_BYTES: int = Field(2_000_000, ge=1024)
    CONVERSATION_OVERFLOW: Literal["trim", "error"] = "trim"

    # Gateway
    USER_RPM_DEFAULT: int = Field(10, ge=1)
    GLOBAL_RPM_MAX: int = Field(1000, ge=1)
    ROUTER_MASTER_KEY: SecretStr | None = None
    GATEWAY_HOST: str = "127.0.0.1"
    GATEWAY_PORT: int = Field(8000, ge=0, le=65535)
    GATEWAY_WORKERS: int = Field(1, ge=1, le=256)
    #: Local development only: requests without a virtual key are served as user "anonymous".
    GATEWAY_ALLOW_ANONYMOUS: bool = False
    #: How long a stopping worker waits for requests in flight (streams included) to finish.
    GATEWAY_SHUTDOWN_TIMEOUT_SECONDS: float = Field(30.0, ge=0)
    #: How long a worker trusts a verified virtual key before reading it again (revocation is
    #: immediate regardless: the limits script checks it on every request).
    GATEWAY_VKEY_CACHE_SECONDS: float = Field(10.0, ge=0)
    GATEWAY_MAX_BODY_BYTES: int = Field(20 * 1024 * 1024, ge=1024)
    #: ``serve`` runs on uvloop when it is installed (the ``speed`` extra); false: asyncio's loop.
    GATEWAY_UVLOOP: bool = True
    #: Hosts a key's base_url may name when set over the admin API (comma list, glob patterns,
    #: ``*`` = any); unset: the providers' official hosts. Origins in keys.json are always allowed.
    ADMIN_ALLOWED_BASE_URL_HOSTS: str | None = None
    #: secret_ref values the admin API may set (comma list of glob patterns); unset: the key-secret
    #: conventions (API_KEY_*, <PROVIDER>_KEY_*), and any name in a vault, aws, azure or infisical store.
    ADMIN_ALLOWED_SECRET_REFS: str | None = None
    #: Seconds /health/ready and /status reuse their last check of the store and the secret store.
    READINESS_CACHE_SECONDS: float = Field(2.0, ge=0, le=300)
    #: When set, GET /metrics needs ``Authorization: Bearer <METRICS_TOKEN>``.
    METRICS_TOKEN: SecretStr | None = None
    #: A read-only dashboard token: it logs in to /ui (without actions); the master key acts.
    DASHBOARD_TOKEN: SecretStr | None = None
    #: How long a dashboard session lasts (the cookie's Max-Age and the session's TTL in Redis).
    DASHBOARD_SESSION_SECONDS: int = Field(8 * 3600, ge=60, le=30 * 86400)

    # Usage log, cost and budgets (README "Usage, cost and budgets")
    #: One record per call in a Redis stream (and per-minute rollups); off: neither is written.
    USAGE_LOG: bool = True
    #: The stream keeps records this long and at most this many (the older go first).
    USAGE_RETENTION_SECONDS: int = Field(7 * 86400, ge=60)
    USAGE_MAX_RECORDS: int = Field(1_000_000, ge=100)
    #: Per-minute rollups expire this long after their minute.
    USAGE_ROLLUP_TTL_SECONDS: int = Field(8 * 86400, ge=120)
    #: Distinct names per dimension (user, model, ...) in one minute's rollup; the rest: ``~other``.
    USAGE_ROLLUP_MAX_NAMES: int = Field(1000, ge=10)
    #: Store the prompt and completion text in usage records (debugging only: off by default).
    USAGE_STORE_CONTENT: bool = False
    #: Budgets (JSON, the form of keys.json's "budgets" section) for library callers.
    BUDGETS: str | None = None
    #: Share of a budget at which a soft alert is logged and counted (a budget may set its own).
    BUDGET_ALERT_SHARE: float = Field(0.8, gt=0, le=1)
    #: OpenTelemetry export (needs the ``otel`` extra): spans per call to this OTLP endpoint.
    OTEL_EXPORTER_OTLP_ENDPOINT: str | None = None

    # Logging
    LOG_LEVEL: str = "INFO"
    LOG_FORMAT: Literal["auto", "json", "console"] = "auto"
    #: Also write the (masked, JSON) log to this file, rotated by size (document 004's
    #: ``logs/llm_router.log``); ``{pid}`` in the name is the process id. Unset: stderr only.
    LOG_FILE: str | None = None
    LOG_FILE_MAX_BYTES: int = Field(10 * 1024 * 1024, ge=1024)
    LOG_FILE_BACKUPS: int = Field(5, ge=0, le=1000)
    #: The ``.env`` file read at start (kernel/env_file.py); unset: ``./.env`` when present.
    ROUTER_ENV_FILE: str | None = None

    # Secret stores (documents 000, 003, 004)
    VAULT_ADDR: str | None = None
    VAULT_TOKEN: SecretStr | None = None
    VAULT_SECRET_PATH: str = "secret/llm"
    VAULT_ROLE_ID: str | None = None
    VAULT_SECRET_ID: SecretStr | None = None
    VAULT_NAMESPACE: str | None = None
    AWS_REGION: str = "us-east-1"
    AWS_SECRET_PREFIX: str = "llm/"
    AWS_ENDPOINT_URL: str | None = None
    AZURE_VAULT_URL: str | None = None
    INFISICAL_SITE_URL: str = "https://app.infisical.com"
    INFISICAL_CLIENT_ID: str | None = None
    INFISICAL_CLIENT_SECRET: SecretStr | None = None
    INFISICAL_PROJECT_ID: str | None = None
    INFISICAL_ENVIRONMENT: str = "production"
    INFISICAL_SECRET_PATH: str = "/"
    # Added for the secret-store backends (docs/secret-stores.md)
    SECRET_STORE_TIMEOUT_SECONDS: float = Field(10.0, gt=0)
    VAULT_CACERT: str | None = None
    AZURE_TENANT_ID: str | None = None
    AZURE_CLIENT_ID: str | None = None
    AZURE_CLIENT_SECRET: SecretStr | None = None
    AZURE_AUTHORITY_HOST: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``environ`` (default ``os.environ``, after the ``.env`` file is read
        into it: kernel/env_file.py), with keyword overrides on top."""
        if environ is None:
            ensure_env_file()
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            name: env[name] for name in cls.model_fields if env.get(name, "").strip() != ""
        }
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else "environment"
            raise ConfigError(err["msg"], source="environment", field=name) from None

    @property
    def rotation_enabled(self) -> bool | None:
        """``ENABLE_KEY_ROTATION`` / ``LLM_MULTI_KEY_ROUTER_ENABLED``; None when neither is set."""
        for flag in (self.ENABLE_KEY_ROTATION, self.LLM_MULTI_KEY_ROUTER_ENABLED):
            if flag is not None:
                return flag
        return None

    def strategy_for(self, provider: str) -> Strategy | None:
        """The configured strategy for ``provider``; None when not configured."""
        specific: Strategy | None = getattr(self, f"{provider.upper()}_KEY_ROTATION_STRATEGY", None)
        return specific or self.KEY_ROTATION_STRATEGY

    @property
    def uses_embedded_store(self) -> bool:
        return not self.REDIS_URL


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from ``os.environ`` (cached; tests build their own)."""
    return Settings.from_env()
