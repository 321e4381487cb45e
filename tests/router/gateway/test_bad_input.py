"""Bad input at every entry of the gateway: control characters, deep nesting, huge numbers."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from kernel import jsonio
from kernel.errors import ConfigError
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL, GatewayHarness, assert_error_shape, chat_body
from tests.router.providers.test_long_lines import LongLineUpstream

pytestmark = pytest.mark.integration


async def post_raw(gw: GatewayHarness, path: str, token: str, data: bytes) -> tuple[int, Any]:
    """(status, parsed JSON) of a POST of ``data`` as it is."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gw.url + path, data=data, headers=headers) as response,
    ):
        return response.status, json.loads(await response.text())


CONTROLS = ["\t", "\n", "\r", "\x00", "\x1b", "\x7f", "\x85"]


async def test_a_control_character_in_a_cooldown_reason_is_refused(gw: GatewayHarness) -> None:
    for char in CONTROLS:
        status, body = await gw.admin(
            "POST", "/keys/pool-a/cooldown", {"seconds": 60, "reason": f"maint{char}enance"}
        )
        assert status == 400, repr(char)
        assert assert_error_shape(body)["param"] == "reason"
    status, body = await gw.admin("GET", "/keys/pool-a")
    assert status == 200 and body["data"]["state"] != "cooldown"


async def test_a_tab_written_into_a_health_reason_breaks_nothing(gw: GatewayHarness) -> None:
    """The library below the admin API (engine.cooldown) takes any text: the record encoder keeps
    the health record whole, so chats, /status and /metrics keep answering (they answered 500)."""
    engine = gw.gateway.router.key_manager.engine
    reason = "a\ttab|pipe;semi=eq,comma%25\nnewline"
    await engine.cooldown("pool-a", 300, reason)
    health = await engine.health("pool-a")
    assert (health["state"], health["reason"]) == ("cooldown", reason)
    vkey = await gw.vkey(name="t")
    status, body, _ = await gw.request("POST", "/v1/chat/completions", token=vkey, body=chat_body())
    assert status == 200, body
    status, body = await gw.admin("GET", "/keys/pool-a")
    assert status == 200 and body["data"]["state"] == "cooldown"
    status, body, _ = await gw.request("GET", "/status")
    assert status == 200 and body["keys"]["by_state"] == {"cooldown": 1, "healthy": 1}, body
    status, _, _ = await gw.request("GET", "/metrics")
    assert status == 200
    # the other key disabled with the same text: every key out, an ordinary answer (no 500)
    await engine.disable("pool-b", reason)
    assert (await engine.health("pool-b"))["reason"] == reason
    status, body, _ = await gw.request("POST", "/v1/chat/completions", token=vkey, body=chat_body())
    assert status in (429, 503) and assert_error_shape(body), body


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/keys",
            {
                "key_id": "k-new",
                "provider": "openai",
                "model_name": MODEL,
                "tags": {"team": "a\tb"},
            },
            "tags",
        ),
        (
            "/keys",
            {
                "key_id": "k-new",
                "provider": "openai",
                "model_name": MODEL,
                "secret_ref": "API_KEY_X\n",
            },
            "secret_ref",
        ),
        ("/keys", {"key_id": "k\tnew", "provider": "openai", "model_name": MODEL}, "key_id"),
        ("/vkeys", {"name": "ci\nbot"}, "name"),
        ("/vkeys", {"tags": {"team": "x\x00"}}, "tags"),
        ("/vkeys", {"models": ["gpt-4o\t"]}, "models"),
    ],
)
async def test_control_characters_in_admin_fields_are_refused(
    gw: GatewayHarness, path: str, body: dict[str, object], param: str
) -> None:
    status, answer = await gw.admin("POST", path, body)
    assert status == 400, answer
    assert assert_error_shape(answer)["param"].startswith(param), answer


async def test_control_characters_in_a_key_update_are_refused(gw: GatewayHarness) -> None:
    status, answer = await gw.admin("PATCH", "/keys/pool-a", {"tags": {"team": "a\x85b"}})
    assert status == 400 and assert_error_shape(answer)["param"] == "tags", answer
    status, answer = await gw.admin("PATCH", "/keys/pool-a", {"api_version": "2024\r\n"})
    assert status == 400 and assert_error_shape(answer)["param"] == "api_version", answer


async def test_a_control_character_in_the_model_is_refused(gw: GatewayHarness) -> None:
    vkey = await gw.vkey(name="t")
    body = chat_body()
    body["model"] = MODEL + "\n"
    status, answer, _ = await gw.request("POST", "/v1/chat/completions", token=vkey, body=body)
    assert status == 400 and assert_error_shape(answer)["param"] == "model", answer


async def test_the_key_manager_refuses_a_control_character_in_a_reason(gw: GatewayHarness) -> None:
    with pytest.raises(ConfigError) as caught:
        await gw.gateway.router.key_manager.mark_key_unhealthy("pool-a", 60, "a\tb")
    assert caught.value.field == "reason"


@pytest.mark.parametrize("backend", ["orjson", "stdlib"])
@pytest.mark.parametrize("depth", [200, 5_000])
async def test_deeply_nested_bodies_are_a_400(
    gw: GatewayHarness, monkeypatch: pytest.MonkeyPatch, backend: str, depth: int
) -> None:
    if backend == "stdlib":
        monkeypatch.setattr(jsonio, "_orjson", None)
    vkey = await gw.vkey(name="t")
    nested = "[" * depth + "]" * depth
    tool = '{"type":"function","function":{"name":"f","parameters":{"x":' + nested + "}}}"
    chat = (
        '{"model":"'
        + MODEL
        + '","messages":[{"role":"user","content":"hi"}],"tools":['
        + tool
        + "]}"
    )
    for path, token, body in (
        ("/v1/chat/completions", vkey, chat),
        ("/api/v1/admin/keys", gw.master, '{"key_id":"k","tags":' + nested + "}"),
        ("/api/v1/admin/keys/pool-a/cooldown", gw.master, nested),
    ):
        status, answer = await post_raw(gw, path, token, body.encode())
        assert status == 400, (path, answer)
        error = assert_error_shape(answer)
        assert error["param"] == "body" and "nested deeper" in error["message"], error


async def test_an_over_long_stream_line_moves_the_stream_to_another_key(
    make_gateway: GatewayFactory,
) -> None:
    """One key's endpoint streams a line past the reader's limit: streams are answered by the
    other key (before, the ValueError was a 500)."""
    gw = await make_gateway(OPENAI_KEY_ROTATION_STRATEGY="round_robin")
    upstream = await LongLineUpstream().start()
    try:
        await gw.gateway.router.key_manager.update_key("pool-a", base_url=upstream.url + "/v1")
        vkey = await gw.vkey(name="t")
        for _ in range(4):
            status, body, _ = await gw.request(
                "POST", "/v1/chat/completions", token=vkey, body=chat_body(stream=True)
            )
            assert status == 200 and "data: [DONE]" in body, body
        assert upstream.calls >= 1
    finally:
        await upstream.stop()


async def test_when_every_key_streams_over_long_lines_the_answer_is_a_502(
    gw: GatewayHarness,
) -> None:
    upstream = await LongLineUpstream().start()
    try:
        for key_id in ("pool-a", "pool-b"):
            await gw.gateway.router.key_manager.update_key(key_id, base_url=upstream.url + "/v1")
        vkey = await gw.vkey(name="t")
        status, body, _ = await gw.request(
            "POST", "/v1/chat/completions", token=vkey, body=chat_body(stream=True)
        )
        assert status == 502, body
        assert "longer than the reader's limit" in assert_error_shape(body)["message"]
    finally:
        await upstream.stop()
