"""A lease: one reserved key handed to the caller for a call the router does not make itself.

    async with router.lease("gpt-4o-mini", tokens=1200) as lease:
        client = lease.async_client()                 # openai.AsyncOpenAI for this key
        response = await client.chat.completions.create(model=lease.model, messages=...)
        lease.record(response)                        # its usage, read from the response

The lease is reserved like any call of the router (router/lease_runner.py opens and settles it).
``secret`` is the key's secret: it is in no repr, str, log or error message.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

from kernel.errors import ClientRequestError, ProviderError
from keys.manager import KeySelection
from router.answers import CallSummary
from router.providers import ADAPTERS, Usage
from router.sdk_clients import make_client
from router.sdk_usage import usage_from

__all__ = ["KINDS", "Lease"]

#: What a lease may be for (``kind``): it decides how the worst-case cost is priced.
KINDS = ("chat", "embedding", "other")


class Lease:
    """One reserved key: its id, provider, model, secret and base URL, SDK clients for it, and
    the usage the caller reports (``record``)."""

    __slots__ = (
        "_clients",
        "_secret",
        "_timeout",
        "_usage",
        "cost_nanos",
        "error",
        "estimate",
        "kind",
        "selection",
        "summary",
    )

    def __init__(
        self,
        selection: KeySelection,
        secret: str,
        summary: CallSummary,
        *,
        kind: str,
        estimate: int,
        timeout: float,
        cost_nanos: int | None = None,
    ) -> None:
        self.selection = selection
        self._secret = secret
        self.summary = summary
        self.kind = kind
        #: The tokens reserved for the lease.
        self.estimate = estimate
        self._usage: Usage | None = None
        self._clients: list[Any] = []
        self._timeout = timeout
        #: The worst-case cost reserved on the budgets (None: no price known).
        self.cost_nanos = cost_nanos
        #: How the lease failed, classified (router/sdk_errors.py), once it has.
        self.error: ProviderError | None = None

    # -- what the caller reads -------------------------------------------------------------------
    @property
    def key_id(self) -> str:
        return self.selection.key.key_id

    @property
    def provider(self) -> str:
        return self.selection.key.provider

    @property
    def model(self) -> str:
        """The model to call (the requested one, or the alias or fallback it resolved to)."""
        return self.selection.model

    @property
    def masked_key(self) -> str:
        return self.selection.masked_key

    @property
    def secret(self) -> str:
        """The key's secret, for a client you configure yourself. Never log it."""
        return self._secret

    @property
    def base_url(self) -> str:
        """The key's base URL (``base_url`` in keys.json), else the provider's default."""
        adapter = ADAPTERS.get(self.provider)
        default = adapter.default_base_url if adapter is not None else ""
        return (self.selection.key.base_url or default).rstrip("/")

    @property
    def usage(self) -> Usage | None:
        """What ``record`` was told so far (None: nothing)."""
        return self._usage

    def __repr__(self) -> str:
        return (
            f"Lease(key_id={self.key_id!r}, provider={self.provider!r}, model={self.model!r}, "
            f"key={self.masked_key!r}, kind={self.kind!r})"
        )

    __str__ = __repr__

    # -- clients ---------------------------------------------------------------------------------
    def client(self, **options: Any) -> Any:
        """A blocking official-SDK client for this key (router/sdk_clients.py), retries off;
        closed when the lease ends. ``options`` go to the client's constructor."""
        return self._make(False, options)

    def async_client(self, **options: Any) -> Any:
        """An asyncio official-SDK client for this key (google-genai: ``Client(...).aio``)."""
        return self._make(True, options)

    def _make(self, asynchronous: bool, options: dict[str, Any]) -> Any:
        client = make_client(
            self.selection.key,
            self._secret,
            self.base_url,
            asynchronous=asynchronous,
            timeout=self._timeout,
            options=options,
        )
        if "http_client" not in options:  # a client the caller passed is the caller's to close
            self._clients.append(client)
        return client

    async def close_clients(self) -> None:
        """Close the clients this lease made (at its end)."""
        clients, self._clients = self._clients, []
        for client in clients:
            close = getattr(client, "aclose", None) or getattr(client, "close", None)
            if close is None:
                continue
            with contextlib.suppress(Exception):
                done = close()
                if inspect.isawaitable(done):
                    await done

    # -- usage -----------------------------------------------------------------------------------
    def record(
        self,
        usage: Any = None,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> Usage:
        """Report a call's usage: an SDK response (or its ``usage``), a ``Usage``, a mapping,
        or ``prompt_tokens`` / ``completion_tokens``. Several calls on one lease add up.
        Answers the lease's usage so far."""
        if usage is not None:
            got = usage_from(usage)
            if got is None:
                raise ClientRequestError(
                    f"lease.record: no token usage found in {type(usage).__name__}", param="usage"
                )
        else:
            for name, value in (
                ("prompt_tokens", prompt_tokens),
                ("completion_tokens", completion_tokens),
            ):
                if value is not None and (not isinstance(value, int) or value < 0):
                    raise ClientRequestError(
                        f"lease.record: {name} must be a whole number >= 0", param=name
                    )
            prompt, completion = prompt_tokens or 0, completion_tokens or 0
            got = Usage(prompt, completion, total_tokens=prompt + completion)
        self._usage = got if self._usage is None else _add(self._usage, got)
        return self._usage


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.prompt_tokens + b.prompt_tokens,
        a.completion_tokens + b.completion_tokens,
        a.cached_tokens + b.cached_tokens,
        a.total_tokens + b.total_tokens,
        reasoning_tokens=a.reasoning_tokens + b.reasoning_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
    )
