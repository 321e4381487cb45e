"""The health report of ``python -m router --health-check`` (and the base of ``health_check()``).

Healthy means: the configuration is valid, the store answers and the configured secret store gives
the keys' secrets (router/health_secrets.py, as the gateway's ``/health/ready`` asks it). A pool with no keys is reported
(with a warning) but is not unhealthy: a fresh install with no configuration must pass. With
``STORE_FAILURE_MODE=open`` (the default) an unreachable Redis is ``"status": "degraded"`` with a
warning, still healthy: the router serves on local limits meanwhile.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from conversation.store import ConversationStore
from kernel.errors import ConfigError, StoreError
from kernel.settings import Settings
from kernel.store import Store, create_store
from keys.config import KeyConfig, env_secret_for, load_key_config
from keys.learned import limits_report
from keys.manager import KeyManager
from router.health_secrets import secret_store_health


def _keys_section(config: KeyConfig, settings: Settings) -> dict[str, Any]:
    by_provider: dict[str, int] = {}
    for key in config.keys:
        by_provider[key.provider] = by_provider.get(key.provider, 0) + 1
    section: dict[str, Any] = {
        "total": len(config.keys),
        "active": sum(1 for key in config.keys if key.active),
        "by_provider": by_provider,
        "keys_file": str(config.path) if config.path else None,
    }
    if settings.SECRET_STORE_TYPE == "env":
        missing = [
            k.key_id for k in config.keys if k.active and env_secret_for(k, os.environ)[0] is None
        ]
        section["secrets_missing"] = missing
    return section


async def store_health(store: Store) -> dict[str, Any]:
    try:
        latency = await store.ping()
    except StoreError as exc:
        return {**store.describe(), "ok": False, "error": str(exc)}
    return {**store.describe(), "ok": True, "latency_ms": round(latency, 3)}


async def health_report(
    keys_path: str | None = None, settings: Settings | None = None
) -> dict[str, Any]:
    """Configuration, keys and store health as one JSON-ready dict with ``healthy``."""
    report: dict[str, Any] = {
        "healthy": True,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "errors": [],
        "warnings": [],
    }
    try:
        settings = settings or Settings.from_env()
        config = load_key_config(keys_path, settings=settings)
    except ConfigError as exc:
        report["healthy"] = False
        report["errors"].append(str(exc))
        return report
    report["keys"] = _keys_section(config, settings)
    secrets = await secret_store_health(config, settings)
    report["secret_store"] = secrets.section
    if secrets.missing is not None:
        report["keys"]["secrets_missing"] = secrets.missing
    report["warnings"].extend(config.warnings)
    report["warnings"].extend(secrets.warnings)
    if secrets.errors:
        report["healthy"] = False
        report["errors"].extend(secrets.errors)
    _judge_keys(report, config)
    try:
        store = create_store(settings)
    except ConfigError as exc:  # a malformed REDIS_URL: report it like any other bad setting
        report["healthy"] = False
        report["errors"].append(str(exc))
        return report
    try:
        report["store"] = await store_health(store)
        if report["store"]["ok"]:
            report["limits"] = await limits_report(store, config.keys)
    except StoreError as exc:  # the store went away between the two reads
        report["warnings"].append(f"limits not read: {exc}")
    finally:
        await store.close()
    _judge_store(report, settings)
    if not report["healthy"]:  # the keys or the secret store: not "ok" whatever the store says
        report["status"] = "unhealthy"
    return report


def _judge_keys(report: dict[str, Any], config: KeyConfig) -> None:
    """Nothing configured is a working install (a warning says how to add a key); keys that are
    configured but of which none can serve are a broken configuration."""
    missing = report["keys"].get("secrets_missing") or []
    if not config.keys:
        report["warnings"].append(
            "no API keys configured: set OPENAI_API_KEY (or ANTHROPIC_API_KEY, GEMINI_API_KEY) "
            "or a keys.json"
        )
    elif not report["keys"]["active"]:
        report["healthy"] = False
        report["errors"].append(
            f"no active API keys: all {len(config.keys)} configured key(s) are inactive"
        )
    elif len(missing) == report["keys"]["active"]:
        report["healthy"] = False
        report["errors"].append(f"no active key has a secret (missing: {', '.join(missing)})")
    elif missing:
        report["warnings"].append(f"{len(missing)} active key(s) have no secret")


def _judge_store(report: dict[str, Any], settings: Settings) -> None:
    """``status``: ok, degraded (open failure mode: served on local limits) or unhealthy."""
    report["status"] = "ok"
    if report["store"]["ok"]:
        return
    if settings.STORE_FAILURE_MODE == "open" and not settings.uses_embedded_store:
        # the router serves on local limits meanwhile (kernel/failover.py): not a failure
        report["status"] = report["store"]["status"] = "degraded"
        report["warnings"].append(
            f"degraded: {report['store']['error']}; requests are served on local limits "
            f"(each key's limits divided by ROUTER_PROCESSES={settings.ROUTER_PROCESSES}) "
            "until the store answers (STORE_FAILURE_MODE=open)"
        )
        return
    report["healthy"] = False
    report["status"] = "unhealthy"
    report["errors"].append(report["store"]["error"])


async def router_health(keys: KeyManager, conversations: ConversationStore) -> dict[str, Any]:
    """``RequestRouter.health_check``: the key manager's and conversation store's reports."""
    report = await keys.health_check()
    convs = await conversations.health_check()
    healthy = bool(report["healthy"]) and bool(convs.get("healthy", False))
    degraded = keys.store.degraded
    return {
        "healthy": healthy,
        "status": "unhealthy" if not healthy else "degraded" if degraded else "ok",
        "degraded": degraded,
        "key_manager": report,
        "conversation_store": convs,
        "secret_store": report.get("secret_store"),
    }
