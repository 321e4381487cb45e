"""A streamed line longer than the reader's limit (aiohttp's 512 KiB) from a real HTTP upstream: a
MalformedResponseError that rotates to another key, never a ValueError (a 500 at the gateway)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from kernel.errors import MalformedResponseError
from keys.models import APIKey
from router.providers import ChatRequest, get_adapter
from tests import keygen
from tests.conftest import settings_for
from tests.router.pool import PoolKey, sim_router

pytestmark = pytest.mark.integration
SECRET = keygen.opaque_secret()  # made at run time: nothing key-shaped is committed
LONG = 4 * 1024 * 1024  # bytes in one SSE line: past aiohttp's line limit (512 KiB in 3.14)
MODELS = {
    "openai": "gpt-4o-mini",
    "azure": "gpt4o-deployment",
    "anthropic": "claude-haiku-4-5",
    "gemini": "gemini-2.0-flash",
}


class LongLineUpstream:
    """Answers every POST with a stream whose first line is LONG bytes; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"x":"' + b"a" * LONG + b'"}\n\n')
        await response.write(b"data: [DONE]\n\n")
        return response

    async def start(self) -> LongLineUpstream:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def upstream() -> AsyncIterator[LongLineUpstream]:
    server = await LongLineUpstream().start()
    yield server
    await server.stop()


@pytest.mark.parametrize("provider", list(MODELS))
async def test_an_over_long_stream_line_is_a_malformed_response(
    upstream: LongLineUpstream, provider: str
) -> None:
    base = upstream.url + {"openai": "/v1", "azure": f"/openai/deployments/{MODELS[provider]}"}.get(
        provider, ""
    )
    key = APIKey(key_id="k1", model_name=MODELS[provider], provider=provider, base_url=base)  # type: ignore[arg-type]
    request = ChatRequest(model=MODELS[provider], messages=[{"role": "user", "content": "hi"}])
    async with aiohttp.ClientSession() as http:
        adapter = get_adapter(provider, http)
        with pytest.raises(MalformedResponseError) as caught:
            async for _ in adapter.stream(key, SECRET, request):
                pass
    assert "longer than the reader's limit" in str(caught.value)
    assert SECRET not in str(caught.value) and caught.value.provider == provider
    assert upstream.calls == 1


async def test_the_router_rotates_past_a_key_that_streams_over_long_lines(
    upstream: LongLineUpstream, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = settings_for(
        "redis", request, RESERVE_WAIT_SECONDS=0, OPENAI_KEY_ROTATION_STRATEGY="round_robin"
    )
    keys = [PoolKey("long", base_url=upstream.url + "/v1", rpm=1000), PoolKey("good", rpm=1000)]
    async with sim_router(settings, tmp_path, keys) as (router, _sim):
        for _ in range(4):
            events = [
                e
                async for e in router.stream_complete(
                    [{"role": "user", "content": "hello"}], "gpt-4o-mini"
                )
            ]
            done = events[-1]
            assert done["type"] == "done" and done["success"], done
            assert done["key_id"] == "good"
    assert upstream.calls >= 1
