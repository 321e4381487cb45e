"""The gateway's limits through a connection that loses the script's reply: the script lane runs
the call again, and the limits are charged once (twice before each call carried an id)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from kernel.settings import Settings
from kernel.store import create_store
from router.gateway.limits import RequestLimits
from tests.conftest import unique_prefix

pytestmark = pytest.mark.integration


class ReplyDroppingProxy:
    """A TCP proxy to Redis that, once armed, cuts the connection instead of passing the next
    reply on: the command ran on Redis, its caller never hears back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.armed = False
        self.dropped = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, replies: bool) -> None:
            while data := await src.read(65536):
                if replies and self.armed:
                    self.armed = False
                    self.dropped += 1
                    writer.transport.abort()
                    up_writer.close()
                    return
                dst.write(data)
                await dst.drain()
            dst.close()

        with contextlib.suppress(ConnectionError, OSError):
            await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))


async def test_a_lost_reply_does_not_charge_the_limits_twice(redis_url: str) -> None:
    proxy = ReplyDroppingProxy(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    url = await proxy.start()
    settings = Settings.from_env(
        {}, REDIS_URL=url, REDIS_KEY_PREFIX=unique_prefix(), USER_RPM_DEFAULT=2
    )
    store = create_store(settings)
    try:
        assert store.lane is not None
        limits = RequestLimits(store, settings)
        assert (await limits.acquire(user_id="alice", vkey=None, tokens=0)).allowed
        proxy.armed = True  # the next reply is lost: the lane reconnects and runs the call again
        assert (await limits.acquire(user_id="alice", vkey=None, tokens=0)).allowed
        assert proxy.dropped == 1
        # two requests of 2/min charged: the third has no room (it had none after the retry before)
        third = await limits.acquire(user_id="alice", vkey=None, tokens=0)
        assert not third.allowed and third.limit == "user"
        assert third.retry_after == pytest.approx(30.0, abs=1.0)
    finally:
        await store.close()
        await proxy.stop()
