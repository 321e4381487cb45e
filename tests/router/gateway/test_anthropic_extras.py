"""The Messages API's stop sequences through the official anthropic SDK: the gateway, the
Anthropic adapter and the provider simulator's Anthropic wire (which ends a reply on the first of
the request's ``stop_sequences`` its text holds, as Anthropic does)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.router.gateway.harness import GatewayHarness
from tests.router.gateway.test_anthropic_api import CLAUDE, claude_gw, client

pytestmark = pytest.mark.integration
HELLO: Any = [{"role": "user", "content": "Hello there"}]
__all__ = ["claude_gw"]


async def test_a_matched_stop_sequence_is_the_stop_reason(claude_gw: GatewayHarness) -> None:
    sdk: anthropic.AsyncAnthropic = client(claude_gw, await claude_gw.vkey())
    stops = ["never-there", " reply"]
    plain = await sdk.messages.create(
        model=CLAUDE, max_tokens=256, messages=HELLO, stop_sequences=stops
    )
    assert plain.stop_reason == "stop_sequence" and plain.stop_sequence == " reply"
    assert plain.content[0].type == "text" and plain.content[0].text == "Simulated anthropic"
    async with sdk.messages.stream(
        model=CLAUDE, max_tokens=256, messages=HELLO, stop_sequences=stops
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == " reply"
    assert final.content[0].type == "text" and final.content[0].text == "Simulated anthropic"


async def test_no_match_is_end_turn(claude_gw: GatewayHarness) -> None:
    sdk = client(claude_gw, await claude_gw.vkey())
    message = await sdk.messages.create(
        model=CLAUDE, max_tokens=256, messages=HELLO, stop_sequences=["never-there"]
    )
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
