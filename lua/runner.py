"""What a binding runs its script on: anything with the store's ``run`` (kernel's Store, the
local store of degraded mode). A Protocol, so that ``lua`` imports nothing above it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from lua import Script


class Runner(Protocol):
    """The store's script call: EVALSHA ``script`` with ``keys`` and ``args``.

    ``local_args`` replace ``args`` on degraded mode's local store (divided limits); with
    ``replay_args`` a write made locally is run again on the shared store when it returns.
    """

    async def run(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        local_args: Sequence[Any] | None = None,
        replay_args: Sequence[Any] | None = None,
        replayed: Callable[[Any], None] | None = None,
    ) -> Any: ...


class WhereRunner(Runner, Protocol):
    """A runner that also says whether the script ran on degraded mode's local store."""

    async def run_where(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        local_args: Sequence[Any] | None = None,
        replay_args: Sequence[Any] | None = None,
        replayed: Callable[[Any], None] | None = None,
    ) -> tuple[Any, bool]: ...


def number(value: float) -> str:
    """A float as the scripts read it (``repr``: every digit of a microsecond timestamp kept)."""
    return repr(float(value))
