"""Unknown routes answer in the caller's API's error shape; the API is served without /v1 too."""

from __future__ import annotations

import openai
import pytest

from router.gateway.routes import bare_form, error_shape
from tests.router.gateway.harness import MODEL, GatewayHarness, assert_error_shape

pytestmark = pytest.mark.integration


async def test_an_unknown_route_under_v1_names_it_and_lists_the_api(gw: GatewayHarness) -> None:
    status, body, _ = await gw.request("POST", "/v1/assistants", token=await gw.vkey())
    assert status == 404
    error = assert_error_shape(body)
    assert error["code"] == "not_found" and error["type"] == "invalid_request_error"
    message = error["message"]
    assert "POST /v1/assistants" in message
    for route in ("POST /v1/chat/completions", "POST /v1/responses", "GET /v1/models"):
        assert route in message


async def test_the_sdk_sees_a_not_found_error_naming_the_route(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey())
    with pytest.raises(openai.NotFoundError) as caught:
        await client.batches.list()
    assert "GET /v1/batches" in caught.value.message
    assert "POST /v1/responses" in caught.value.message


async def test_messages_paths_answer_in_anthropics_shape(gw: GatewayHarness) -> None:
    status, body, _ = await gw.request("POST", "/v1/messages/batches")
    assert status == 404 and body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert "POST /v1/messages/batches" in body["error"]["message"]


def test_the_shape_and_the_bare_forms() -> None:
    assert error_shape("/v1/messages") == error_shape("/messages/count_tokens") == "anthropic"
    assert error_shape("/v1/messagesx") == error_shape("/v1/chat/x") == "openai"
    assert bare_form("/v1/chat/completions") == "/chat/completions"
    assert bare_form("/v1/models/{model}") == "/models/{model}"
    assert bare_form("/api/v1/admin/keys") is None and bare_form("/v1/files") is None


async def test_a_bare_host_as_base_url_works(gw: GatewayHarness) -> None:
    client = openai.AsyncOpenAI(base_url=gw.url, api_key=await gw.vkey(), max_retries=0)
    chat = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}]
    )
    assert 'You said: "Hello there"' in (chat.choices[0].message.content or "")
    response = await client.responses.create(model=MODEL, input="Hello there")
    assert 'You said: "Hello there"' in response.output_text
    assert MODEL in [m.id async for m in client.models.list()]
    assert (await client.models.retrieve(MODEL)).id == MODEL
    stream = await client.responses.create(model=MODEL, input="Hi", stream=True)
    assert [e.type async for e in stream][-1] == "response.completed"
