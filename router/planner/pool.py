"""A configured pool (keys.json) as the planner sees it: per model, the limits of each quota group."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from kernel.errors import ConfigError
from keys.models import APIKey
from router.planner.model import KeyLimits


def limits_of(key: APIKey) -> KeyLimits:
    return KeyLimits(rpm=key.rpm, tpm=key.tpm, rpm_burst=key.rpm_burst, tpm_burst=key.tpm_burst)


def pools_by_model(keys: Sequence[APIKey]) -> dict[str, list[KeyLimits]]:
    """Model (or pattern) -> the limits of each active quota group serving it: keys of one group
    share one budget, so a group counts as one key."""
    seen: dict[str, dict[str, KeyLimits]] = {}
    for key in keys:
        if not key.active:
            continue
        for binding in key.bindings:
            seen.setdefault(binding.model, {}).setdefault(key.group, limits_of(key))
    return {model: list(groups.values()) for model, groups in sorted(seen.items())}


def typical(pool: Sequence[KeyLimits]) -> KeyLimits:
    """The limits most keys of a pool have (added keys are assumed to be like them)."""
    return Counter(pool).most_common(1)[0][0]


def select(
    pools: dict[str, list[KeyLimits]], model: str | None, where: str
) -> dict[str, list[KeyLimits]]:
    """The pools to plan: all, or the one ``--model`` names (an error names the file's models)."""
    if model is None:
        if not pools:
            raise ConfigError("no active key serves any model", source=where)
        return pools
    if model not in pools:
        known = ", ".join(pools) or "none"
        raise ConfigError(
            f"--model {model!r} is not served by any active key (models: {known})", source=where
        )
    return {model: pools[model]}
