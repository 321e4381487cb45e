"""``RequestRouter.flush``: wait for the settles sent off the answers' path (a mixin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keys.manager import KeyManager
    from router.usage_log import UsageLog


class SettleAPI:
    """The flush of :class:`router.request_router.RequestRouter`."""

    key_manager: KeyManager
    usage: UsageLog

    async def flush(self) -> None:
        """Wait until every call answered so far is settled and its usage record written.

        With ``SETTLE_MODE=deferred`` (the default) an answer returns before its settle lands
        (keys/settle_queue.py); status, usage reports and tests that read the settled state
        right after a call await this first. ``close()`` flushes too."""
        await self.key_manager.flush()
        await self.usage.flush()
