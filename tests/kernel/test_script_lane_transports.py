"""The script lane (kernel/script_lane.py) on every transport the store's URL can name.

The lane lets redis-py connect (TCP, unix socket, TLS; AUTH, SELECT) and then takes the transport
over. Against real redis-servers (TLS with a trustme CA, a unix socket), on uvloop too, and against
a server of the test's own that sends every reply one byte at a time (replies split at every byte,
an error reply among them).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import hiredis
import pytest
import redis.asyncio as aioredis
import trustme

from kernel.script_lane import ScriptLane
from tests.helpers import eventually
from tests.kernel.test_script_lane import ECHO, INCR
from tests.kernel.test_script_lane_faults import BIG
from tests.servers import RedisServer, free_port, redis_server

pytestmark = pytest.mark.integration


async def _exercise(lane: ScriptLane) -> None:
    """Concurrent calls (the first ones answered NOSCRIPT), a reply spread over many reads, then
    one at a time."""
    calls = [lane.run(ECHO, [f"k{i}"], [f"v{i}", i]) for i in range(100)]
    calls.append(lane.run(BIG, [], [3000, "z", 600_000]))
    replies = await asyncio.gather(*calls)
    assert replies[:100] == [[f"k{i}", f"v{i}", 2 * i] for i in range(100)]
    assert replies[100] == ["z" * 600_000, [f"z{n}" for n in range(1, 3001)]]
    assert [await lane.run(INCR, ["n"], [1]) for _ in range(5)] == [1, 2, 3, 4, 5]


async def test_tls() -> None:
    ca = trustme.CA()
    server = RedisServer(port=free_port())
    paths = {name: server.workdir / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(paths["cert"])
    issued.private_key_pem.write_to_path(paths["key"])
    server.extra = ["--port", "0", "--tls-port", str(server.port), "--tls-auth-clients", "no"]
    server.extra += ["--tls-cert-file", str(paths["cert"]), "--tls-key-file", str(paths["key"])]
    server.extra += ["--tls-ca-cert-file", str(paths["ca"])]
    server.start()
    url = f"rediss://127.0.0.1:{server.port}/0"
    pool = aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=True, ssl_ca_certs=str(paths["ca"])
    )
    lane = ScriptLane(pool)
    try:
        await _exercise(lane)
        server.restart()  # the TLS connection is lost: a new one, a new handshake
        assert await lane.run(INCR, ["n"], [1]) == 1
    finally:
        await lane.close()
        server.cleanup()


async def test_unix_socket_and_database() -> None:
    server = RedisServer()
    socket_path = server.workdir / "redis.sock"
    server.extra = ["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
    server.start()
    url = f"unix://{socket_path}?db=2"
    lane = ScriptLane(aioredis.BlockingConnectionPool.from_url(url, decode_responses=True))
    admin = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        await _exercise(lane)
        assert await admin.get("n") == "5"  # SELECT 2 was made on the lane's connection
    finally:
        await admin.aclose()
        await lane.close()
        server.cleanup()


def test_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")  # the ``speed`` extra: what ``serve`` runs on

    async def scenario() -> None:
        with redis_server() as server:
            lane = ScriptLane(
                aioredis.BlockingConnectionPool.from_url(server.url, decode_responses=True)
            )
            admin = aioredis.Redis.from_url(server.url, decode_responses=True)
            try:
                await _exercise(lane)
                await admin.execute_command("CLIENT", "PAUSE", "60000", "WRITE")
                pending = [asyncio.ensure_future(lane.run(INCR, ["n"], [1])) for _ in range(10)]
                await eventually(lambda: lane._channel is not None and lane._channel.inflight)
                server.kill()  # with calls in flight, and back before the loop runs again
                server.start()
                assert sorted(await asyncio.gather(*pending)) == list(range(1, 11))
            finally:
                await admin.aclose()
                await lane.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


class _Trickle:
    """A RESP server that answers EVALSHA with NOSCRIPT and EVAL with its keys and arguments, each
    reply sent one byte at a time (anything else, e.g. redis-py's handshake: +OK, at once)."""

    def __init__(self) -> None:
        self.evals = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader()
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                await self._answer(command, writer)
        writer.close()

    async def _answer(self, command: list[bytes], writer: asyncio.StreamWriter) -> None:
        name = command[0].upper()
        if name == b"EVALSHA":
            reply = b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
        elif name == b"EVAL":
            self.evals += 1
            items = command[3:]
            reply = b"*%d\r\n" % len(items) + b"".join(
                b"$%d\r\n%s\r\n" % (len(i), i) for i in items
            )
        else:
            writer.write(b"+OK\r\n")
            return
        for byte in range(len(reply)):
            writer.write(reply[byte : byte + 1])
            await writer.drain()
            await asyncio.sleep(0)  # the lane reads between the bytes


async def test_replies_sent_one_byte_at_a_time(tmp_path: Path) -> None:
    trickle = _Trickle()
    server = await asyncio.start_server(trickle.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lane = ScriptLane(aioredis.BlockingConnectionPool.from_url(f"redis://127.0.0.1:{port}/0"))
    try:
        replies = await asyncio.gather(
            *(lane.run(ECHO, [f"k{i}"], [f"v{i}", i]) for i in range(20))
        )
        assert replies == [[f"k{i}".encode(), f"v{i}".encode(), str(i).encode()] for i in range(20)]
        assert trickle.evals == 20  # each NOSCRIPT (split too) sent its own EVAL
    finally:
        await lane.close()
        server.close()
        await server.wait_closed()
