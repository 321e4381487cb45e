"""Where the admin API may send a key's secret: ``base_url`` and ``secret_ref`` under a policy.

The master key can add and change keys at run time. Without a policy it could point a key's
``base_url`` at a host of its choosing (the key's secret travels in the request headers) or set a
``secret_ref`` that names any variable or secret the router can read (the masked form of the value
then shows in status answers). So, over the admin API only (keys.json is the operator's own):

* ``base_url`` must be an ``https://`` URL on a host of ``ADMIN_ALLOWED_BASE_URL_HOSTS`` (comma
  list of host names or glob patterns, ``*`` for any; default: the providers' official hosts
  api.openai.com, api.anthropic.com, generativelanguage.googleapis.com), or have exactly the
  scheme, host and port of a ``base_url`` configured in keys.json (so a local or Azure endpoint the
  operator configured stays usable, over http too);
* ``secret_ref`` must match ``ADMIN_ALLOWED_SECRET_REFS`` (comma list of glob patterns; default:
  the key-secret conventions ``API_KEY_*``, ``OPENAI_KEY_*``, ``ANTHROPIC_KEY_*``, ``GEMINI_KEY_*``,
  ``AZURE_KEY_*``, with or without ``env:``, and any name in the configured backend when that is
  not the environment: a Vault, AWS, Azure or Infisical name under the backend's configured path)
  or be a ``secret_ref`` configured in keys.json; a ref with ``..`` is always refused.

A refusal is a 403 ``forbidden_value`` naming the field.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kernel.errors import GatewayError
from kernel.settings import Settings
from keys.models import APIKey
from router.gateway.errors import forbidden

OFFICIAL_HOSTS = ("api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com")
CONVENTION_REFS = ("API_KEY_*", "OPENAI_KEY_*", "ANTHROPIC_KEY_*", "GEMINI_KEY_*", "AZURE_KEY_*")
#: Backends whose plain secret names are names in the process environment (or one file).
_ENV_LIKE = ("env", "file")


def _origin(url: str) -> str | None:
    """``scheme://host:port`` of ``url`` (the default port made explicit); None when unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


def _patterns(value: str | None, default: Iterable[str]) -> tuple[str, ...]:
    if value is None or not value.strip():
        return tuple(default)
    return tuple(p.strip() for p in value.split(",") if p.strip())


@dataclass(frozen=True)
class AdminPolicy:
    """What a key's ``base_url`` and ``secret_ref`` may become over the admin API."""

    hosts: tuple[str, ...]
    origins: frozenset[str]
    refs: tuple[str, ...]
    configured_refs: frozenset[str]
    #: Any plain name of the configured backend (default policy, backend not the environment).
    backend_names: bool = False

    @classmethod
    def build(cls, settings: Settings, configured: Iterable[APIKey]) -> AdminPolicy:
        """The policy of ``settings`` over the keys configured in keys.json (and the environment)."""
        keys = list(configured)
        conventions = [*CONVENTION_REFS, *(f"env:{p}" for p in CONVENTION_REFS)]
        explicit = bool((settings.ADMIN_ALLOWED_SECRET_REFS or "").strip())
        return cls(
            hosts=_patterns(settings.ADMIN_ALLOWED_BASE_URL_HOSTS, OFFICIAL_HOSTS),
            origins=frozenset(o for k in keys if k.base_url and (o := _origin(k.base_url))),
            refs=_patterns(settings.ADMIN_ALLOWED_SECRET_REFS, conventions),
            configured_refs=frozenset(k.secret_ref for k in keys if k.secret_ref),
            backend_names=not explicit and settings.SECRET_STORE_TYPE not in _ENV_LIKE,
        )

    def check(self, changes: Mapping[str, Any]) -> None:
        """Refuse (403, naming the field) a ``base_url`` or ``secret_ref`` the policy does not allow."""
        base_url = changes.get("base_url")
        if isinstance(base_url, str) and not self.base_url_allowed(base_url):
            raise _refused(
                "base_url",
                "this host is not allowed for keys changed over the admin API "
                "(ADMIN_ALLOWED_BASE_URL_HOSTS; https only, or an origin configured in keys.json)",
            )
        ref = changes.get("secret_ref")
        if isinstance(ref, str) and not self.secret_ref_allowed(ref):
            raise _refused(
                "secret_ref",
                "this secret reference is not allowed for keys changed over the admin API "
                "(ADMIN_ALLOWED_SECRET_REFS, or a secret_ref configured in keys.json)",
            )

    def base_url_allowed(self, url: str) -> bool:
        origin = _origin(url)
        if origin is None:
            return False
        if origin in self.origins:
            return True
        host = urlsplit(url).hostname or ""
        return url.lower().startswith("https://") and any(
            fnmatch.fnmatchcase(host.lower(), p.lower()) for p in self.hosts
        )

    def secret_ref_allowed(self, ref: str) -> bool:
        if ref in self.configured_refs:
            return True
        if ".." in ref:
            return False
        if any(fnmatch.fnmatchcase(ref, p) for p in self.refs):
            return True
        return self.backend_names and not ref.startswith("env:")


def _refused(field: str, why: str) -> GatewayError:
    return forbidden(f"Invalid value for '{field}': {why}.", code="forbidden_value", param=field)
