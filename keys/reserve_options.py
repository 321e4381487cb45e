"""What one reservation asks for besides the model and the tokens: one frozen object carried from
``KeyManager.select_key`` through the selector to the engine (and each shard's engine).

    options = ReserveOptions(strategy="round_robin", exclude=("k1",), margin=0.05)
    await engine.reserve("gpt-4o", 1200, options)
    await engine.reserve("gpt-4o", 1200, strategy="random")      # the same fields as keywords

``admission`` is the gateway's request limits of the call (keys/admission.py), charged by the
first reservation of the request in the same script run where the store allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from keys.admission import Admission


@dataclass(frozen=True, slots=True)
class ReserveOptions:
    """``strategy``: how a key is chosen (kernel.settings.STRATEGIES); ``reservation_id`` (None:
    a fresh one); ``exclude``: key ids not to use; ``tags``: the tags a key must have;
    ``margin`` (None: the engine's): seconds a limit-bound request waits past its exact room
    (lua/lib_pool.lua, GCRA_MARGIN); ``budgets``: the budget fields the call counts under
    (lua.usage_records.budget_field) and ``cost_nanos`` its worst-case cost in nano-dollars
    (None: no price known, refused wherever a budget applies); ``output``: how many of the
    tokens are the completion (an output token limit's charge); ``admission``: the gateway's
    limits of the request (None: none)."""

    strategy: str = "capacity"
    reservation_id: str | None = None
    exclude: Sequence[str] = ()
    tags: dict[str, str] | None = None
    margin: float | None = None
    budgets: Sequence[str] = ()
    cost_nanos: int | None = None
    output: int = 0
    admission: Admission | None = None

    @staticmethod
    def of(options: ReserveOptions | None, given: dict[str, Any]) -> ReserveOptions:
        """``options`` (default: the defaults) with the fields named in ``given`` replaced;
        TypeError for a name that is no field."""
        base = options if options is not None else DEFAULTS
        return replace(base, **given) if given else base


DEFAULTS = ReserveOptions()
