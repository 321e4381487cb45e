"""Per-user, global and per-virtual-key limits of the gateway: one Lua call per request.

    limits = RequestLimits(store, settings)
    decision = await limits.acquire(user_id="alice", vkey=key, tokens=1200)
    if not decision.allowed:
        ...429 with Retry-After: decision.retry_after...

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

import os
from dataclasses import dataclass

from kernel.settings import Settings
from kernel.store import Store
from lua import acquire_limits
from lua.acquire_limits import AcquireArgs, AcquireKeys, AcquireReply
from router.gateway.vkeys import VirtualKey

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


def _decision(reply: AcquireReply) -> LimitDecision:
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

    async def acquire(
        self, *, user_id: str | None, vkey: VirtualKey | None, tokens: int, now: float | None = None
    ) -> LimitDecision:
        """Charge one request (and ``tokens`` against the key's TPM) on every limit, or none.
        ``user_id`` None: the request names no user, the per-user limit does not apply."""
        vkey_id = vkey.id if vkey else NO_KEY
        rpm = (vkey.rpm or 0) if vkey else 0
        tpm = (vkey.tpm or 0) if vkey else 0
        args = AcquireArgs(
            "" if now is None else repr(now),
            "acquire",
            self.user_rpm if user_id is not None else 0,  # a limit of 0 is not enforced
            self.global_rpm,
            rpm,
            tpm,
            tokens if tpm else 0,
            CALL_TTL_SECONDS,
        )
        keys, local_args = self._keys(user_id or NO_KEY, vkey_id), self._local(args)
        reply = await acquire_limits.run(self.store, keys, args, local_args=local_args)
        failover = self.store.failover
        if reply.allowed and failover is not None and failover.holdover:
            # just back from degraded mode: the local store alone knows what this process let
            # through meanwhile; a refusal here leaves the shared charge (conservative)
            reply = await acquire_limits.run(failover.local, keys, local_args or args)
        return _decision(reply)

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

    def _local(self, args: AcquireArgs) -> AcquireArgs | None:
        """The arguments on degraded mode's local store: every limit divided by ROUTER_PROCESSES
        (rounded down, at least 1), so the gateway's processes together stay within them."""
        if self.store.failover is None:
            return None
        return args.divided(self.store.local_divisor)
