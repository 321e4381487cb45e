"""The environment conventions of the source documents: keys from provider variables, ``env:``
secret references, and the variables a keys.json key's secret may be in.

- Provider variables (document 001), for each of OpenAI, Anthropic and Gemini: the comma list
  ``OPENAI_API_KEYS``, the numbered ``OPENAI_API_KEY_1..N`` and the single ``OPENAI_API_KEY``, with
  limits from ``OPENAI_RPM``/``_TPM``/``_RPD``; :func:`keys_from_environment`.
- ``[env:]NAME`` and ``[env:]NAME#i`` references: :func:`env_secret_by_ref`.
- A keys.json key's secret with the ``env`` store: ``secret_ref``, ``API_KEY_{KEY_ID}`` (document
  004) or ``{PROVIDER}_KEY_{key_id}`` (document 003); :func:`env_secret_for`.

:mod:`keys.config` merges these keys with keys.json's and re-exports these names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from pydantic import ValidationError

from kernel.errors import ConfigError
from kernel.settings import PROVIDERS
from keys.models import DEFAULT_MODELS, APIKey

ENV_PREFIX = {"openai": "OPENAI", "anthropic": "ANTHROPIC", "gemini": "GEMINI"}


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible identifier of a secret (8 hex digits of its SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def _env_limit(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError("must be a whole number", source="environment", field=name) from None
    if value < 1:
        raise ConfigError("must be at least 1", source="environment", field=name)
    return value


def env_provider_refs(
    env: Mapping[str, str], provider: str, *, single_only: bool = False
) -> list[str]:
    """The secret references a provider's variables define: comma list, numbered, single."""
    prefix = ENV_PREFIX[provider]
    refs: list[str] = []
    if not single_only:
        # Positions count non-empty elements only, as env_secret_by_ref resolves them ("a,,b").
        listed = [p for part in env.get(f"{prefix}_API_KEYS", "").split(",") if (p := part.strip())]
        refs.extend(f"env:{prefix}_API_KEYS#{i}" for i in range(1, len(listed) + 1))
        numbered = sorted(
            (int(m.group(1)), name)
            for name in env
            if (m := re.fullmatch(rf"{prefix}_API_KEY_(\d+)", name)) and env[name].strip()
        )
        refs.extend(f"env:{name}" for _, name in numbered)
    if env.get(f"{prefix}_API_KEY", "").strip():
        refs.append(f"env:{prefix}_API_KEY")
    return refs


def keys_from_environment(
    env: Mapping[str, str], *, single_key_mode: bool = False
) -> list[tuple[APIKey, str]]:
    """Keys defined by provider variables, each with its source; duplicates by secret removed."""
    found: list[tuple[APIKey, str]] = []
    seen: set[str] = set()
    for provider in PROVIDERS:
        prefix = ENV_PREFIX[provider]
        limits = {
            "rpm": _env_limit(env, f"{prefix}_RPM"),
            "tpm": _env_limit(env, f"{prefix}_TPM"),
            "rpd": _env_limit(env, f"{prefix}_RPD"),
            "itpm": _env_limit(env, f"{prefix}_ITPM"),
            "otpm": _env_limit(env, f"{prefix}_OTPM"),
        }
        base_url = env.get(f"{prefix}_BASE_URL", "").strip() or None
        model = env.get(f"{prefix}_MODEL", "").strip() or DEFAULT_MODELS[provider]
        for ref in env_provider_refs(env, provider, single_only=single_key_mode):
            secret = env_secret_by_ref(ref, env)
            if not secret or secret in seen:
                continue
            seen.add(secret)
            source = ref.removeprefix("env:").split("#")[0]
            try:
                key = APIKey.model_validate(
                    {
                        "key_id": f"{provider}-{fingerprint(secret)}",
                        "provider": provider,
                        "model_name": model,
                        "models": [{"model": model}, {"model": "*", "priority": 1}],
                        "base_url": base_url,
                        "secret_ref": ref,
                        **limits,
                    }
                )
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                variable = f"{prefix}_BASE_URL" if loc == "base_url" else f"{prefix}_MODEL"
                raise ConfigError(err["msg"], source="environment", field=variable) from None
            found.append((key, f"env:{source}"))
    return found


def env_secret_by_ref(ref: str, env: Mapping[str, str]) -> str | None:
    """Resolve ``[env:]NAME`` or ``[env:]NAME#i`` (the i-th element, from 1, of a comma list)."""
    name = ref.removeprefix("env:")
    index = None
    if "#" in name:
        name, _, pos = name.partition("#")
        index = int(pos) if pos.isdigit() else None
    raw = env.get(name)
    if raw is None:
        return None
    if index is None:
        return raw.strip() or None
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    return parts[index - 1] if 0 < index <= len(parts) else None


def env_secret_names(key: APIKey) -> list[str]:
    """Variables that may hold a keys.json key's secret, in the order they are tried."""
    names: list[str] = [key.secret_ref] if key.secret_ref else []
    upper_id = re.sub(r"[^A-Z0-9]", "_", key.key_id.upper())
    names.append(f"API_KEY_{upper_id}")
    prefix = ENV_PREFIX.get(key.provider, key.provider.upper())
    names.append(f"{prefix}_KEY_{key.key_id}")
    if f"{prefix}_KEY_{upper_id}" not in names:
        names.append(f"{prefix}_KEY_{upper_id}")
    return names


def env_secret_for(key: APIKey, env: Mapping[str, str]) -> tuple[str | None, str]:
    """(secret, variable it came from) for ``key`` from the environment conventions."""
    names = env_secret_names(key)
    for name in names:
        value = env_secret_by_ref(name, env)
        if value:
            return value, name.removeprefix("env:")
    return None, names[0].removeprefix("env:")


def env_secrets_of(keys: list[APIKey], env: Mapping[str, str]) -> set[str]:
    """The secrets ``keys`` have in the environment (to count a secret given twice once)."""
    return {secret for key in keys if (secret := env_secret_for(key, env)[0])}
