"""Official SDK clients configured for one leased key (``Lease.client()`` / ``async_client()``).

    openai     openai.OpenAI / AsyncOpenAI (api_key, base_url)
    azure      openai.AzureOpenAI / AsyncAzureOpenAI (the deployment URL, the key's api_version)
    anthropic  anthropic.Anthropic / AsyncAnthropic (base_url without a trailing /v1)
    gemini     google.genai.Client (http_options: base_url, timeout); async: its ``.aio``

Every client is made with its own retries off (``max_retries=0``; google-genai: one attempt):
the router rotates to another key instead, and counts every call. The timeout is the router's
``REQUEST_TIMEOUT_SECONDS`` unless ``options`` say otherwise; ``options`` go to the constructor.
The SDK is imported when a client is asked for: install the one you use
(``pip install openai`` / ``anthropic`` / ``google-genai``).
"""

from __future__ import annotations

import importlib
from typing import Any

from kernel.errors import ConfigError
from keys.models import APIKey
from router.providers import AZURE_DEFAULT_API_VERSION

__all__ = ["make_client"]

_PACKAGES = {
    "openai": "openai",
    "azure": "openai",
    "anthropic": "anthropic",
    "gemini": "google-genai",
}


def make_client(
    key: APIKey,
    secret: str,
    base_url: str,
    *,
    asynchronous: bool,
    timeout: float,
    options: dict[str, Any],
) -> Any:
    """A client of the key's provider's official SDK, for this key only."""
    provider = key.provider
    if provider in ("openai", "azure"):
        return _openai(key, secret, base_url, asynchronous, timeout, options)
    if provider == "anthropic":
        module = _sdk("anthropic", provider)
        cls = module.AsyncAnthropic if asynchronous else module.Anthropic
        base = base_url.removesuffix("/v1")
        return cls(
            api_key=secret, base_url=base, **{"max_retries": 0, "timeout": timeout, **options}
        )
    if provider == "gemini":
        return _gemini(secret, base_url, asynchronous, timeout, options)
    raise ConfigError(
        f"no official SDK client for provider {provider!r}", entry=key.key_id, field="provider"
    )


def _openai(
    key: APIKey,
    secret: str,
    base_url: str,
    asynchronous: bool,
    timeout: float,
    options: dict[str, Any],
) -> Any:
    module = _sdk("openai", key.provider)
    settings = {"max_retries": 0, "timeout": timeout, **options}
    if key.provider == "azure":
        cls = module.AsyncAzureOpenAI if asynchronous else module.AzureOpenAI
        version = key.api_version or AZURE_DEFAULT_API_VERSION
        return cls(api_key=secret, base_url=base_url, api_version=version, **settings)
    cls = module.AsyncOpenAI if asynchronous else module.OpenAI
    return cls(api_key=secret, base_url=base_url, **settings)


def _gemini(
    secret: str, base_url: str, asynchronous: bool, timeout: float, options: dict[str, Any]
) -> Any:
    genai = _sdk("google.genai", "gemini")
    types = importlib.import_module("google.genai.types")
    base = base_url.removesuffix("/v1beta").removesuffix("/v1")
    http = types.HttpOptions(
        base_url=base,
        timeout=int(timeout * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    client = genai.Client(api_key=secret, **{"http_options": http, **options})
    return client.aio if asynchronous else client


def _sdk(module: str, provider: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the {provider} SDK is not installed: pip install {_PACKAGES[provider]}",
            field="provider",
        ) from exc
