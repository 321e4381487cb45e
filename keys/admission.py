"""The gateway's request limits of one call, carried by its reservations (ReserveOptions.admission).

The gateway (router/gateway/limits.py) builds an :class:`Admission` from its limits script's KEYS
and ARGV (lua/acquire_limits.lua) and hands it to the router with the call. The first reservation
of the call charges it: on a store where one script may touch both the limits' slot and the
pool's (standalone Redis, the embedded store; one pool shard) in the same script run as the
reservation (lua/reserve_admitted.lua), else in a round trip of its own first
(:meth:`Admission.charge_apart`, the gateway's acquire). Once charged it is never charged again:
the call's other reservations (another key, another model, after waiting for room) carry it
decided, and the script keeps the answer of a charging call under the call's id besides.

A refusal raises :class:`~kernel.errors.AdmissionRefusedError` and nothing is reserved.
"""

from __future__ import annotations

from kernel.errors import AdmissionRefusedError
from kernel.store import Store
from lua import acquire_limits, reserve_admitted
from lua import reserve as lua_reserve
from lua.acquire_limits import AcquireArgs, AcquireKeys, AcquireReply
from lua.reserve import ReserveArgs, ReserveKeys, ReserveReply

ALLOWED = AcquireReply(True)


class Admission:
    """One call's limits: the script's KEYS and ARGV (``local_args``: degraded mode's, every limit
    divided), and once charged the script's answer (``reply``)."""

    __slots__ = ("args", "keys", "local_args", "reply")

    def __init__(
        self, keys: AcquireKeys, args: AcquireArgs, local_args: AcquireArgs | None = None
    ) -> None:
        self.keys, self.args, self.local_args = keys, args, local_args
        self.reply: AcquireReply | None = None

    @property
    def pending(self) -> bool:
        """Not charged yet (no reservation of the call ran it)."""
        return self.reply is None

    async def charge_apart(self, store: Store) -> AcquireReply:
        """Charge the limits in a script run of their own (a sharded pool, Redis Cluster, degraded
        mode): on the shared store (degraded: the local one, with the divided limits), and
        during the holdover after degraded mode on the local store too, which alone knows what
        this process let through meanwhile (a refusal there leaves the shared charge:
        conservative). Answers the reply, kept in ``reply``."""
        reply = await acquire_limits.run(store, self.keys, self.args, local_args=self.local_args)
        failover = store.failover
        if reply.allowed and failover is not None and failover.holdover:
            reply = await acquire_limits.run(
                failover.local, self.keys, self.local_args or self.args
            )
        self.reply = reply
        return reply

    async def charge(self, store: Store) -> None:
        """:meth:`charge_apart` when pending; AdmissionRefusedError when the limits refuse."""
        if self.pending and not (reply := await self.charge_apart(store)).allowed:
            raise refusal_error(reply)


def foldable(store: Store) -> bool:
    """Whether a reservation may charge the limits in its own script run: one script may touch
    the limits' slot and the pool's (not Redis Cluster), and neither degraded mode nor its
    holdover (their two stores) is on."""
    failover = store.failover
    if failover is not None and (failover.degraded or failover.holdover):
        return False
    return store.kind != "cluster"


async def reserve(
    store: Store,
    keys: ReserveKeys,
    reservation: str,
    args: ReserveArgs,
    admission: Admission | None,
) -> tuple[ReserveReply, bool]:
    """lua/reserve.lua's run (and whether on degraded mode's local store), charging ``admission``
    first when it is pending: in the same script run where the store allows it (see
    :func:`foldable`), else apart. AdmissionRefusedError (nothing reserved) when it refuses."""
    if admission is not None and admission.pending:
        if foldable(store):
            limits = (admission.keys, admission.args, admission.local_args)
            reply, where = await reserve_admitted.run_where(store, keys, reservation, args, limits)
            if isinstance(reply, AcquireReply):  # the script answers the limits' refusal only
                admission.reply = reply
                raise refusal_error(reply)
            admission.reply = ALLOWED
            return reply, where
        await admission.charge(store)
    return await lua_reserve.run_where(store, keys, reservation, args)


def refusal_error(reply: AcquireReply) -> AdmissionRefusedError:
    """The error of the limits' refusal ``reply``."""
    return AdmissionRefusedError(reply.limit, reply.retry_after, revoked=reply.revoked)
