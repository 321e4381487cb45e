"""One usage record per call: what the library and the gateway did, what it cost, for whom.

The record is stored as JSON (field ``r`` of an entry of the usage stream, kernel/redis_keys.py's
``usage_stream``), exported as JSON lines by ``python -m router usage export`` and served by the
admin API. The README's "Usage record" table documents every field; ``tests/kernel/
test_usage_record.py`` checks that the table and :data:`FIELDS` agree.

Never in a record: a secret (``key_id`` is the configured id), and no prompt or completion text
unless USAGE_STORE_CONTENT is set (then ``prompt`` and ``completion`` hold it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from kernel import jsonio


@dataclass(frozen=True)
class Attribution:
    """Whom a call is for: the usage record's caller fields and the budgets it counts against.
    The gateway fills it from the virtual key; library callers pass ``user=`` / ``team=``."""

    user: str | None = None
    team: str | None = None
    vkey: str | None = None
    conversation_id: str | None = None
    source: str = "library"


@dataclass
class UsageRecord:
    """One call (a ``send_*`` / gateway request, all its attempts together)."""

    #: Unix time (the store's clock where known) the call ended; ``minute`` its rollup minute.
    ts: float
    request_id: str
    #: Where the call came from: ``library`` or ``gateway``.
    source: str = "library"
    # the caller
    vkey: str | None = None
    user: str | None = None
    team: str | None = None
    conversation_id: str | None = None
    # what was asked and who served it
    requested_model: str = ""
    model: str | None = None
    provider: str | None = None
    key_id: str | None = None
    # tokens as the provider counted them (estimated when it reported none: ``usage_reported``)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    usage_reported: bool = True
    #: USD; None when the served model's price is unknown (never 0 for unknown).
    cost: float | None = None
    # time: total, waiting for room, in the provider's hands (the last attempt)
    latency_ms: float = 0.0
    wait_ms: float = 0.0
    provider_ms: float = 0.0
    attempts: int = 0
    rotations: int = 0
    fallback_used: bool = False
    success: bool = True
    error_type: str | None = None
    stream: bool = False
    degraded: bool = False
    minute: int = 0
    #: Only with USAGE_STORE_CONTENT: the last user message and the answer's text.
    prompt: str | None = None
    completion: str | None = None

    def to_json(self) -> str:
        # every field is a scalar: read them as they are (``asdict`` deep-copies each value,
        # which cost ~25 us of a gateway request's CPU)
        data = {k: v for k, v in vars(self).items() if v is not None or k in _KEEP_NULL}
        return jsonio.dumps(data).decode()

    @classmethod
    def from_json(cls, raw: str | bytes) -> UsageRecord:
        data: dict[str, Any] = jsonio.loads(raw)
        known = {k: v for k, v in data.items() if k in _NAMES}
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
_NAMES = frozenset(FIELDS)
#: Written even when null: their absence would read as "not recorded" rather than "unknown".
_KEEP_NULL = frozenset({"cost", "error_type", "model", "key_id"})
