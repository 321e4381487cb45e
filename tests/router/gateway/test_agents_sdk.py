"""The OpenAI Agents SDK on its default model (the Responses API) through the gateway."""

from __future__ import annotations

import pytest

from tests.router.gateway.harness import MODEL, GatewayHarness

agents = pytest.importorskip("agents")
pytestmark = pytest.mark.integration


@agents.function_tool
def get_weather(city: str = "Paris") -> str:
    """The weather of a city."""
    return f"sunny in {city}"


async def test_an_agent_with_a_tool_answers_through_the_gateway(gw: GatewayHarness) -> None:
    client = gw.client(await gw.vkey(name="agent"))
    model = agents.OpenAIResponsesModel(model=MODEL, openai_client=client)
    agent = agents.Agent(
        name="weather",
        instructions="Answer with the weather.",
        model=model,
        tools=[get_weather],
        model_settings=agents.ModelSettings(tool_choice="get_weather"),
    )
    result = await agents.Runner.run(
        agent, "Weather in Paris?", run_config=agents.RunConfig(tracing_disabled=True)
    )
    assert 'You said: "Weather in Paris?"' in result.final_output
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    assert gw.sim is not None
    last = gw.sim.requests()[-1].messages
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool"]
    assert last[-1]["content"] == "sunny in Paris"  # the simulator calls with empty arguments
