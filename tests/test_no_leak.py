"""No leak: a full router flow with canary secrets never shows them anywhere.

Keys whose secrets are canaries serve, fail with 401 and fail with 5xx, through the library and
through the gateway (official SDK, streams, admin and status routes, metrics), with every log
record at DEBUG captured by the product's own rendering. Neither canary may appear in any log line,
error message, answer, status answer, HTTP header or metric. One canary looks like an OpenAI key
(caught by the patterns); the other looks like nothing (only the secret store's registration can
mask it).
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from kernel.log import json_formatter
from router.simulator import FaultConfig
from tests.conftest import unique_prefix
from tests.keygen import openai_project_key
from tests.router.gateway.harness import GatewayHarness, PoolKey, chat_body


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_canary_secrets_never_appear_anywhere(
    redis_url: str, tmp_path: Path, captured_logs: io.StringIO
) -> None:
    shaped = openai_project_key()  # matches the OpenAI pattern
    plain = "canary" + secrets.token_hex(20)  # matches no pattern at all
    pool = [
        PoolKey("serving", secret=shaped),
        PoolKey("plain", secret=plain),
        PoolKey("revoked", secret="rev" + secrets.token_hex(20)),
        PoolKey("flaky", secret="flk" + secrets.token_hex(20)),
    ]
    canaries = [k.secret for k in pool]
    seen: list[str] = []
    async with GatewayHarness(tmp_path, redis_url, unique_prefix(), pool=pool) as gw:
        assert gw.sim is not None
        gw.sim.revoke_key("revoked")
        gw.sim.set_faults(FaultConfig(error_rate=1.0), key_id="flaky")
        vkey = await gw.vkey(name="leak-test")
        client = gw.client(vkey)
        for i in range(12):
            answer = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"hi {i}"}]
            )
            seen.append(answer.model_dump_json())
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "stream"}], stream=True
        )
        seen.extend([chunk.model_dump_json() async for chunk in stream])
        with pytest.raises(openai.AuthenticationError) as bad:
            await gw.client("sk-llmr-not-a-key").chat.completions.create(**chat_body())
        seen.append(str(bad.value))
        router = gw.gateway.router
        seen.append(json.dumps(await router.send_one_shot("library call", "gpt-4o-mini")))
        seen.append(json.dumps(await router.send_one_shot("x", "no-such-model")))
        seen.append(json.dumps(await router.health_check(), default=str))
        manager = router.key_manager
        seen.append(json.dumps(await manager.get_all_key_statuses(), default=str))
        seen.append(json.dumps(await manager.get_stats(), default=str))
        seen.append(json.dumps(await manager.get_health_status(), default=str))
        for path in ("/health", "/health/ready", "/status", "/metrics", "/v1/models"):
            status, body, headers = await gw.request("GET", path, token=vkey)
            seen.append(f"{status} {body} {dict(headers)}")
        for path in ("/openai/stats", "/keys", "/keys/revoked", "/keys/flaky", "/vkeys"):
            status, body = await gw.admin("GET", path)
            assert status == 200, (path, body)
            seen.append(json.dumps(body))
        states = {s["key_id"]: s["state"] for s in await manager.get_all_key_statuses()}
    logged = captured_logs.getvalue()
    assert states["revoked"] == "disabled" and states["flaky"] in ("healthy", "circuit_open")
    assert "revoked" in logged or "disabled" in logged  # the failures were logged ...
    everything = logged + "\n".join(seen)
    for canary in canaries:
        assert canary not in everything  # ... without a secret
        assert canary[6:-6] not in everything  # nor the middle of one
