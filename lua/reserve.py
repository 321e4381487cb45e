"""The binding of lua/reserve.lua: pick a key with room for a request of a model and charge it.

``ReserveKeys`` is built once per index layout (the engine keeps it until the next sync); a call
adds only its reservation's key name. Replies decode into one of :data:`ReserveReply`.

Budgets (lua/lib_usage.lua): ``ReserveArgs.budgets`` names the budget fields the call counts
under and ``cost_nanos`` its worst-case cost; a budget that would pass its limit answers
:class:`BudgetExceeded` before any key is charged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lua import Script, load
from lua.records import decode_text, tiers_list
from lua.runner import Runner, WhereRunner

SCRIPT: Script = load("reserve")


@dataclass(frozen=True)
class TierSets:
    """The sorted sets of one priority tier of an index: ready times, config order, shares."""

    tier: int
    ready: str
    order: str
    share: str


@dataclass(frozen=True)
class ReserveKeys:
    """KEYS of reserve, in order, except the reservation's own (given per call): the pool's
    hashes, then (after the reservation) the budgets and their spend, then per tier
    (ascending) its sets. The tiers argument goes with them."""

    config: str
    state: str
    windows: str
    health: str
    stats: str
    cursor: str
    budgets: str
    spend: str
    tiers: tuple[TierSets, ...]
    _head: list[str] = field(init=False, repr=False, compare=False)
    _tail: list[str] = field(init=False, repr=False, compare=False)
    _tiers_arg: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        head = [self.config, self.state, self.windows, self.health, self.stats, self.cursor]
        sets = [name for t in self.tiers for name in (t.ready, t.order, t.share)]
        tail = [self.budgets, self.spend, *sets]
        object.__setattr__(self, "_head", head)
        object.__setattr__(self, "_tail", tail)
        object.__setattr__(self, "_tiers_arg", tiers_list([t.tier for t in self.tiers]))

    def encode(self, reservation: str) -> list[str]:
        """The KEYS list with ``reservation`` (the reservation hash's name) in its place."""
        return [*self._head, reservation, *self._tail]

    @property
    def tiers_arg(self) -> str:
        return self._tiers_arg


@dataclass(slots=True)  # per call: a frozen dataclass costs ~1 us more to build
class ReserveArgs:
    """ARGV of reserve. ``tags`` is the encoded ``k=v,k=v`` list (lua.records.tags_wanted);
    ``now`` '' = the store's clock; ``offsets`` the day-reset calendars (``name=seconds;...``;
    a budget's time zone is looked up there too, default UTC). ``budgets``: the budget fields
    the call counts under (lua.usage_records.budget_field); ``cost_nanos`` its worst-case cost
    in nano-dollars (None = no price known: refused wherever a budget applies). ``output``: how
    many of ``tokens`` are the completion (an output token limit's charge; the rest is input)."""

    index: str
    tokens: int
    strategy: str
    reservation_id: str
    ttl: int
    now: str
    offsets: str
    random: float
    exclude: Sequence[str] = ()
    tags: str = ""
    probe_ttl: float = 60.0
    margin: float = 0.0
    budgets: Sequence[str] = ()
    cost_nanos: int | None = None
    output: int = 0

    def encode(self, tiers: str) -> list[object]:
        return [
            self.index,
            int(self.tokens),
            self.strategy,
            self.reservation_id,
            self.ttl,
            self.now,
            self.offsets,
            repr(self.random),
            ",".join(self.exclude),
            self.tags,
            tiers,
            self.probe_ttl,
            self.margin,
            ",".join(self.budgets),
            "" if self.cost_nanos is None else max(0, int(self.cost_nanos)),
            max(0, int(self.output)),
        ]


@dataclass(slots=True)  # per call: a frozen dataclass costs ~1 us more to build
class Reserved:
    """A key was charged. ``kind``: 'new', 'probe' (the key's half-open probe) or 'dup' (the
    reservation id already held one: its record is answered, nothing charged again).
    ``alerts``: the budget fields whose alert share this call crossed (once per period)."""

    key_id: str
    tokens: int
    at: float
    tier: int
    kind: str
    bucket: str
    alerts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Why one key could not take the request, and when it can (None: not by itself)."""

    key_id: str
    reason: str
    until: float | None


@dataclass(frozen=True, slots=True)
class NoRoom:
    """No key had room: the earliest time one will (None: none recovers by itself), the
    binding reason there, the store's time and up to ten keys' reasons."""

    earliest: float | None
    reason: str
    now: float
    keys: tuple[Unavailable, ...]


@dataclass(frozen=True, slots=True)
class TooLarge:
    """The request can never fit any key of the index (more tokens than the largest burst)."""

    now: float
    largest: int


@dataclass(frozen=True, slots=True)
class NoKeys:
    """No key serves the index (or the store lost its records)."""

    now: float


@dataclass(frozen=True, slots=True)
class BudgetExceeded:
    """A budget refused the call (nothing charged): its field, when its next period begins, its
    limit and what its period already holds (spent + reserved; nano-dollars), the store's time,
    the budget's period (day | month). ``used`` = -1: the call's price is unknown and the
    budget applies."""

    field: str
    resets_at: float
    limit: int
    used: int
    now: float
    period: str = ""


ReserveReply = Reserved | NoRoom | TooLarge | NoKeys | BudgetExceeded


def _time(value: str) -> float | None:
    return None if value == "inf" else float(value)


def _note(entry: str) -> Unavailable:
    key_id, why, until = entry.split("|")
    return Unavailable(key_id, decode_text(why), _time(until))


def decode(reply: Sequence[str]) -> ReserveReply:
    status = reply[0]
    if status == "ok":
        _, key_id, tokens, at, tier, kind, bucket, alerts = reply
        alerted = tuple(alerts.split(",")) if alerts else ()
        return Reserved(key_id, int(tokens), float(at), int(tier), kind, bucket, alerted)
    if status == "budget":
        _, field, resets_at, limit, used, now, period = reply
        return BudgetExceeded(field, float(resets_at), int(limit), int(used), float(now), period)
    if status == "no_keys":
        return NoKeys(float(reply[1]))
    if status == "too_large":
        return TooLarge(float(reply[1]), int(reply[2]))
    notes = tuple(_note(entry) for entry in reply[4:])
    return NoRoom(_time(reply[1]), reply[2], float(reply[3]), notes)


async def run(
    runner: Runner, keys: ReserveKeys, reservation: str, args: ReserveArgs
) -> ReserveReply:
    """Run reserve; ``reservation`` is the name of the reservation's hash."""
    return decode(await runner.run(SCRIPT, keys.encode(reservation), args.encode(keys.tiers_arg)))


async def run_where(
    runner: WhereRunner, keys: ReserveKeys, reservation: str, args: ReserveArgs
) -> tuple[ReserveReply, bool]:
    """Like :func:`run`; also whether it ran on degraded mode's local store."""
    reply, local = await runner.run_where(
        SCRIPT, keys.encode(reservation), args.encode(keys.tiers_arg)
    )
    return decode(reply), local
