"""Loading the key list from keys.json and the environment conventions of the source documents.

Sources, merged into one list (the README's "Configuration" section documents this order):

1. ``keys.json`` (path argument, else ``KEY_STORE_PATH``, else ``./keys.json`` when it exists):
   ``{"keys": [...], "routing": {...}, "sources": [...]}``, a bare list of keys, or document 002's
   ``{"providers": {"gemini": {"keys": [...]}}}``. ``sources`` (secret-store folders whose keys are
   discovered at run time, see :mod:`keys.discovery`) may stand alone: the key list is then empty.
   ``prices`` (keys/price_config.py) overrides or extends the package's price table; ``budgets``
   (keys/budget_config.py) sets spend limits, merged with the BUDGETS setting (which wins per
   entry). Top-level names other than these are refused (a typo must not silently drop a
   section), except names starting with ``_`` or ``$`` (comments, ``$schema``).
2. Provider variables, for each of OpenAI, Anthropic and Gemini (document 001): the comma list
   ``OPENAI_API_KEYS``, the numbered ``OPENAI_API_KEY_1..N`` and the single ``OPENAI_API_KEY``. All
   are used; a secret given twice (or already used by a keys.json entry) counts once. Such keys
   serve every model of their provider, with limits from ``OPENAI_RPM``/``_TPM``/``_RPD`` when set.
3. ``ENABLE_KEY_ROTATION=false`` (or ``LLM_MULTI_KEY_ROUTER_ENABLED=false``) is document 003's
   single-key mode: keys.json and the lists are ignored; only ``*_API_KEY`` single keys are used.

The environment conventions (provider variables, ``env:`` references, the variables a key's secret
may be in) live in :mod:`keys.config_env`; their names are re-exported here.

Secrets of keys.json entries come from the secret store (``SECRET_STORE_TYPE``); with the ``env``
store they are read from ``secret_ref``, ``API_KEY_{KEY_ID}`` (document 004) or
``{PROVIDER}_KEY_{key_id}`` (document 003). keys.json itself never holds a secret.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from kernel.errors import ConfigError
from kernel.masking import looks_like_secret
from kernel.prices import Price, PriceTable, default_table
from kernel.settings import Settings
from keys.budget_config import BudgetSpec, budgets_from_settings, budgets_of, merge_budgets
from keys.config_env import ENV_PREFIX as ENV_PREFIX
from keys.config_env import env_provider_refs as env_provider_refs
from keys.config_env import env_secret_by_ref as env_secret_by_ref
from keys.config_env import env_secret_for as env_secret_for
from keys.config_env import env_secret_names as env_secret_names
from keys.config_env import env_secrets_of
from keys.config_env import fingerprint as fingerprint
from keys.config_env import keys_from_environment as keys_from_environment
from keys.models import DEFAULT_MODELS, APIKey
from keys.price_config import price_table, prices_of

if TYPE_CHECKING:
    from keys.discovery import SecretSource

_SECRET_FIELDS = ("api_key", "secret", "key", "token", "value")
#: Top-level sections of keys.json; other names are refused, but ``_comment``/``$schema`` style.
_SECTIONS = ("keys", "providers", "routing", "sources", "prices", "budgets")
#: Sections of keys.json that save_keys_file keeps as they are when it rewrites the key list
#: (and comments: names starting with ``_`` or ``$``).
_KEPT_SECTIONS = ("prices", "budgets")


@dataclass
class KeyConfig:
    """The merged key list, keys.json's routing and sources sections, and where each key came from.

    ``sources`` are keys.json's secret-store folders (:class:`keys.discovery.SecretSource`); their
    keys are found at run time by :class:`keys.discovery.KeyDiscovery`, so they are not in ``keys``.
    ``origins`` maps each key id to the file or variable that defined it. ``prices``: the
    package's price table with keys.json's prices over it; ``budgets``: keys.json's budgets and
    the BUDGETS setting's, merged (BUDGETS wins per entry).
    """

    keys: list[APIKey]
    routing: dict[str, Any] = field(default_factory=dict)
    sources: list[SecretSource] = field(default_factory=list)
    path: Path | None = None
    origins: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    prices: PriceTable = field(default_factory=default_table)
    budgets: list[BudgetSpec] = field(default_factory=list)

    def by_id(self) -> dict[str, APIKey]:
        return {key.key_id: key for key in self.keys}


@dataclass(frozen=True)
class KeysFile:
    """One parsed and validated keys.json."""

    keys: list[APIKey]
    routing: dict[str, Any]
    sources: list[SecretSource]
    prices: dict[str, Price] = field(default_factory=dict)
    budgets: dict[str, BudgetSpec] = field(default_factory=dict)


def resolve_keys_path(path: str | os.PathLike[str] | None, settings: Settings) -> Path | None:
    """The keys.json to read: the argument, ``KEY_STORE_PATH``, or ``./keys.json`` if present."""
    if path is not None:
        return Path(path)
    if settings.KEY_STORE_PATH:
        return Path(settings.KEY_STORE_PATH)
    default = Path("keys.json")
    return default if default.is_file() else None


def load_key_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> KeyConfig:
    """Every key from every source, merged; raises :class:`ConfigError` naming the place."""
    env = os.environ if environ is None else environ
    settings = settings or Settings.from_env(env)
    single_key_mode = settings.rotation_enabled is False
    config = KeyConfig(keys=[])
    keys_path = None if single_key_mode else resolve_keys_path(path, settings)
    file_budgets: dict[str, BudgetSpec] = {}
    if keys_path is not None:
        document = read_keys_file(keys_path, settings=settings)
        config.keys.extend(document.keys)
        config.routing = document.routing
        config.sources = document.sources
        config.path = keys_path
        config.origins.update({k.key_id: str(keys_path) for k in document.keys})
        config.prices = price_table(document.prices)
        file_budgets = document.budgets
    config.budgets = merge_budgets(file_budgets, budgets_from_settings(settings))
    if keys_path is None and single_key_mode:
        config.warnings.append("key rotation disabled: single-key mode, keys.json ignored")

    env_store = settings.SECRET_STORE_TYPE == "env"  # noqa: S105 - a backend name, not a secret
    known_secrets = env_secrets_of(config.keys, env) if env_store else set()
    for key, source in keys_from_environment(env, single_key_mode=single_key_mode):
        secret = env_secret_by_ref(key.secret_ref or "", env)
        if secret in known_secrets:
            continue
        known_secrets.add(secret or "")
        if key.key_id in config.origins:
            raise ConfigError(f"key id {key.key_id!r} is already defined", source=source)
        config.keys.append(key)
        config.origins[key.key_id] = source
    return config


# -- keys.json ---------------------------------------------------------------------------------


def load_keys_file(path: str | os.PathLike[str]) -> tuple[list[APIKey], dict[str, Any]]:
    """Parse and validate a keys.json file: (keys, routing section). See :func:`read_keys_file`."""
    document = read_keys_file(path)
    return document.keys, document.routing


def read_keys_file(path: str | os.PathLike[str], *, settings: Settings | None = None) -> KeysFile:
    """Parse and validate a keys.json file: keys, routing, sources, prices and budgets (their
    default alert share from ``settings``); errors name the place."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", source=where) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", source=where) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source=where
        ) from None
    entries, routing = _entries_of(data, where)
    keys: list[APIKey] = []
    seen: dict[str, str | int] = {}
    for label, entry, provider in entries:
        key = parse_key_entry(entry, source=where, index=label, provider=provider)
        if key.key_id in seen:
            first = seen[key.key_id]
            first_text = f"#{first}" if isinstance(first, int) else repr(first)
            raise ConfigError(
                f"duplicate key_id {key.key_id!r} (first defined in entry {first_text})",
                source=where,
                entry=label,
                field="key_id",
            )
        seen[key.key_id] = label
        keys.append(key)
    from keys.discovery import parse_sources  # here: keys.discovery imports this module

    return KeysFile(
        keys=keys,
        routing=routing,
        sources=parse_sources(data, source=where),
        prices=prices_of(data, where=where),
        budgets=budgets_of(data, where=where, settings=settings or Settings.from_env()),
    )


_Entry = tuple[str | int, Any, str | None]  # (label of the entry, the entry, provider section)


def _entries_of(data: Any, where: str) -> tuple[list[_Entry], dict[str, Any]]:
    """The key entries of a parsed keys.json, each labelled for error messages, and its routing."""
    if isinstance(data, list):
        return [(index, entry, None) for index, entry in enumerate(data)], {}
    if not isinstance(data, dict):
        raise ConfigError("expected an object with a 'keys' list", source=where)
    for name in data:
        if name not in _SECTIONS and not str(name).startswith(("_", "$")):
            raise ConfigError(
                f"unknown field (expected one of {', '.join(_SECTIONS)})", source=where, field=name
            )
    if not any(name in data for name in ("keys", "providers", "sources", "prices", "budgets")):
        raise ConfigError("expected a 'keys' list (or 'providers' or 'sources')", source=where)
    routing = data.get("routing", {})
    if not isinstance(routing, dict):
        raise ConfigError("must be an object", source=where, field="routing")
    entries: list[_Entry] = []
    if "keys" in data:
        if not isinstance(data["keys"], list):
            raise ConfigError("must be a list", source=where, field="keys")
        entries.extend((index, entry, None) for index, entry in enumerate(data["keys"]))
    if "providers" in data:
        entries.extend(_provider_entries(data["providers"], where))
    return entries, routing


def _provider_entries(providers: Any, where: str) -> list[_Entry]:
    """Document 002's ``{"providers": {"gemini": {"keys": [...]}}}`` entries, labelled by place."""
    if not isinstance(providers, dict):
        raise ConfigError("must be an object", source=where, field="providers")
    entries: list[_Entry] = []
    for provider, block in providers.items():
        if not isinstance(block, dict) or not isinstance(block.get("keys"), list):
            raise ConfigError("expected a 'keys' list", source=where, field=f"providers.{provider}")
        entries.extend(
            (f"providers.{provider}.keys #{index}", entry, provider)
            for index, entry in enumerate(block["keys"])
        )
    return entries


def parse_key_entry(
    entry: Any, *, source: str, index: str | int, provider: str | None = None
) -> APIKey:
    """One keys.json entry as an APIKey; errors name the file, the entry and the field.

    ``index`` labels the entry when it has no usable ``key_id`` (its position, or its place in
    document 002's ``providers`` layout); an entry with a ``key_id`` is named by it.
    """
    if not isinstance(entry, dict):
        raise ConfigError("expected an object", source=source, entry=index)
    key_id = entry.get("key_id")
    label: str | int = key_id if isinstance(key_id, str) and key_id else index
    data = dict(entry)
    for name in _SECRET_FIELDS:
        if name in data:
            data = _secret_field_as_ref(data, name, source, label)
    if provider is not None:
        data.setdefault("provider", provider)
    if "model_name" not in data:
        models = data.get("models") or data.get("priority_models")
        if (
            isinstance(models, list)
            and models
            and isinstance(models[0], dict)
            and "model" in models[0]
        ):
            data["model_name"] = models[0]["model"]
        elif data.get("provider") in DEFAULT_MODELS:  # only an id and a provider: its default
            data["model_name"] = DEFAULT_MODELS[str(data["provider"])]
    try:
        return APIKey.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or None
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required field is missing"
        raise ConfigError(message, source=source, entry=label, field=loc) from None


def _secret_field_as_ref(
    data: dict[str, Any], name: str, source: str, label: str | int
) -> dict[str, Any]:
    """Document 002 names the secret's variable in ``api_key``; a literal secret is refused.

    A value that looks like a provider key is refused even when it is also a valid variable name
    (an AWS access key id such as ``AKIA...`` is all capitals and digits).
    """
    value = data.pop(name)
    is_secret = isinstance(value, str) and looks_like_secret(value)
    if isinstance(value, str) and not is_secret and re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
        data.setdefault("secret_ref", "env:" + value.removesuffix("_PLACEHOLDER"))
        return data
    shown = "a secret" if is_secret else "a value"
    raise ConfigError(
        f"holds {shown}; keys.json must not contain secrets. Put the secret in the secret store "
        "(for the env store: API_KEY_<KEY_ID>) or name its variable in 'secret_ref'",
        source=source,
        entry=label,
        field=name,
    )


def save_keys_file(
    path: str | os.PathLike[str], keys: list[APIKey], routing: dict[str, Any] | None = None
) -> None:
    """Write keys (metadata only, never secrets) to ``path`` atomically.

    The file's ``prices`` and ``budgets`` sections and its comments are kept as they were.
    The document goes to a temporary file in the same directory, is flushed to disk, then renamed
    over the target: a reader sees the old file or the new one, never half of one, and a failure
    leaves the old file as it was. An existing file keeps its permission bits; a new one is
    readable by its owner only (``mkstemp``'s mode).
    """
    target = Path(path)
    document: dict[str, Any] = _kept_sections(target)
    document["keys"] = [key.metadata() for key in keys]
    if routing:
        document["routing"] = routing
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o777 if target.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _kept_sections(target: Path) -> dict[str, Any]:
    """The sections of an existing keys.json that a save keeps (none when it cannot be read)."""
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        name: value
        for name, value in data.items()
        if name in _KEPT_SECTIONS or str(name).startswith(("_", "$"))
    }
