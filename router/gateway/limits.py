"""Per-user, global and per-virtual-key limits of the gateway: charged with the call's reservation.

    limits = RequestLimits(store, settings)
    if limits.foldable:                 # one script run: the limits, then the reservation
        options["admission"] = limits.admission(user_id="alice", vkey=key, tokens=1200)
        ...router.complete(..., **options): AdmissionRefusedError when they refuse...
    decision = await limits.acquire(user_id="alice", vkey=key, tokens=1200)   # a round trip apart
    if not decision.allowed:
        ...429 with Retry-After: decision.retry_after...

On standalone Redis and the embedded store with one pool shard, the limits go to the router with
the call (keys/admission.py) and its first reservation charges them in the same script run
(lua/reserve_admitted.lua): one round trip before the provider. On Redis Cluster (the limits'
slot is not the pool's), with POOL_SHARDS > 1, in degraded mode and its holdover they are
charged in a round trip of their own first (:meth:`RequestLimits.acquire`).

``USER_RPM_DEFAULT`` applies to every request that names a user (document 004's
``rl:user:<user_id>``: a virtual key's ``user_id``, or the anonymous development user); a request
that names none counts against its virtual key's own limits and the global one only,
``GLOBAL_RPM_MAX`` to the whole gateway (``rl:global``), and a virtual key's own ``rpm``/``tpm``
budgets to that key. The script (lua/acquire_limits.lua) charges all of them or none, so a refused
request never uses up another limit, and it answers when every limit will have room.

While the store is degraded (kernel/failover.py) the limits run on the process's local store,
each divided by ``ROUTER_PROCESSES``; for a minute after (the holdover) a request must fit both.

Each call carries an id of its own (not the client's request id, which a client chooses): a call
that the store client retries after a lost connection answers what its first run did instead of
charging the limits twice (the script keeps the answer of a charging call for
:data:`CALL_TTL_SECONDS`).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from kernel.errors import AdmissionRefusedError
from kernel.log import get_logger
from kernel.settings import Settings
from kernel.store import Store
from keys import admission as folding
from keys.admission import Admission
from lua import acquire_limits
from lua.acquire_limits import AcquireArgs, AcquireKeys, AcquireReply
from router.gateway.vkeys import VirtualKey

log = get_logger("router.gateway")

#: Stands for the virtual key of a request made without one (anonymous development access).
NO_KEY = "-"
#: Seconds the script remembers a charging call, so a retry of it charges nothing (the script lane
#: and redis-py retry for a few seconds at most).
CALL_TTL_SECONDS = 30
#: (user, virtual key) pairs whose Redis key names are kept built (the cache starts over past it).
MAX_NAMED = 10_000


@dataclass(frozen=True)
class LimitDecision:
    """The answer of one acquire: allowed, or which limit refused and for how long.

    ``retry_after`` is None when the request can never fit (more tokens than the key's TPM).
    """

    allowed: bool
    limit: str = ""
    retry_after: float | None = 0.0
    revoked: bool = False


ALLOWED = LimitDecision(allowed=True)


def refused(exc: AdmissionRefusedError) -> LimitDecision:
    """The decision of a refusal the router raised (the limits charged with its reservation)."""
    return limit_decision(AcquireReply(False, exc.revoked, exc.limit, exc.retry_after))


def limit_decision(reply: AcquireReply) -> LimitDecision:
    if reply.allowed:
        return ALLOWED
    if reply.revoked:
        return LimitDecision(allowed=False, limit="revoked", revoked=True)
    return LimitDecision(allowed=False, limit=reply.limit, retry_after=reply.retry_after)


class RequestLimits:
    """The gateway's request limits over one store (every worker shares them through Redis)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.user_rpm = settings.USER_RPM_DEFAULT
        self.global_rpm = settings.GLOBAL_RPM_MAX
        self.shards = settings.POOL_SHARDS
        #: TPM adjustments running off the answers' path (adjust_later).
        self._adjusting: set[asyncio.Task[None]] = set()
        self._names: dict[tuple[str, str], tuple[str, str, str, str, str]] = {}

    def _keys(self, user_id: str, vkey_id: str) -> AcquireKeys:
        """The script's KEYS, with a fresh id for this call (see CALL_TTL_SECONDS); the names
        of a (user, virtual key) pair are built once (at most MAX_NAMED pairs are kept)."""
        names = self.store.keys
        fixed = self._names.get((user_id, vkey_id))
        if fixed is None:
            if len(self._names) >= MAX_NAMED:
                self._names.clear()
            fixed = self._names[(user_id, vkey_id)] = (
                names.rl_user(user_id),
                names.rl_global,
                names.rl_vkey(vkey_id, "rpm"),
                names.rl_vkey(vkey_id, "tpm"),
                names.rl_vkey_revoked(vkey_id),
            )
        return AcquireKeys(*fixed, names.rl_call(os.urandom(16).hex()))

    @property
    def foldable(self) -> bool:
        """Whether the limits may go with the call's first reservation (one script run): a pool
        in one slot (POOL_SHARDS=1) on a store where one script reaches both slots, neither
        degraded mode nor its holdover on (keys/admission.py)."""
        return self.shards <= 1 and folding.foldable(self.store)

    def admission(
        self, *, user_id: str | None, vkey: VirtualKey | None, tokens: int, now: float | None = None
    ) -> Admission:
        """One request's limits: one request (and ``tokens`` against the key's TPM) on every
        limit, or none. ``user_id`` None: the request names no user, the per-user limit does
        not apply. Charged by the router's first reservation of the call, or :meth:`acquire`."""
        vkey_id = vkey.id if vkey else NO_KEY
        tpm = (vkey.tpm or 0) if vkey else 0
        args = AcquireArgs(
            "" if now is None else repr(now),
            "acquire",
            self.user_rpm if user_id is not None else 0,  # a limit of 0 is not enforced
            self.global_rpm,
            (vkey.rpm or 0) if vkey else 0,
            tpm,
            tokens if tpm else 0,
            CALL_TTL_SECONDS,
        )
        return Admission(self._keys(user_id or NO_KEY, vkey_id), args, self._local(args))

    async def acquire(
        self, *, user_id: str | None, vkey: VirtualKey | None, tokens: int, now: float | None = None
    ) -> LimitDecision:
        """Charge one request's limits (:meth:`admission`) in a round trip of their own."""
        call = self.admission(user_id=user_id, vkey=vkey, tokens=tokens, now=now)
        return limit_decision(await call.charge_apart(self.store))

    async def adjust(
        self, *, user_id: str, vkey: VirtualKey, delta: int, now: float | None = None
    ) -> None:
        """Move the key's TPM charge by ``delta`` tokens (actual minus estimated)."""
        if not vkey.tpm or delta == 0:
            return
        now_arg = "" if now is None else repr(now)
        args = AcquireArgs(now_arg, "adjust", 0, 0, 0, vkey.tpm, delta, CALL_TTL_SECONDS)
        keys = self._keys(user_id, vkey.id)
        await acquire_limits.run(self.store, keys, args, local_args=self._local(args))

    def adjust_later(self, *, user_id: str, vkey: VirtualKey, delta: int) -> None:
        """:meth:`adjust` off the answer's path: a task of its own, run once (a failure is
        logged); :meth:`flush` waits for those still running (the gateway's close)."""
        if not vkey.tpm or delta == 0:
            return
        task = asyncio.create_task(self._adjust_logged(user_id, vkey, delta))
        self._adjusting.add(task)
        task.add_done_callback(self._adjusting.discard)

    async def _adjust_logged(self, user_id: str, vkey: VirtualKey, delta: int) -> None:
        try:
            await self.adjust(user_id=user_id, vkey=vkey, delta=delta)
        except Exception as exc:  # the answer is sent: nobody to tell but the log
            log.warning("virtual key TPM adjustment failed", vkey=vkey.id, error=str(exc))

    async def flush(self) -> None:
        """Wait for the TPM adjustments still running (:meth:`adjust_later`)."""
        while self._adjusting:
            await asyncio.gather(*self._adjusting)

    def _local(self, args: AcquireArgs) -> AcquireArgs | None:
        """The arguments on degraded mode's local store: every limit divided by ROUTER_PROCESSES
        (rounded down, at least 1), so the gateway's processes together stay within them."""
        if self.store.failover is None:
            return None
        return args.divided(self.store.local_divisor)
