"""Structured output: the simulator's OpenAI chat answers JSON that matches ``response_format``."""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from router.simulator.content import count_text_tokens
from router.simulator.structured import json_reply, response_schema, sample
from tests.router.simulator.conftest import SECRET, SimFactory

pytestmark = pytest.mark.integration


class Item(BaseModel):
    name: str
    quantity: int
    price: float


class Order(BaseModel):
    customer: str
    items: list[Item]
    status: Literal["open", "shipped"]
    express: bool
    note: str | None


SCHEMAS: list[dict[str, Any]] = [
    Order.model_json_schema(),
    {"type": "object", "properties": {"a": {"enum": [3, 4]}, "b": {"const": "x"}}},
    {"type": "array", "items": {"type": "string", "format": "date"}, "minItems": 2},
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 10}}, "required": ["n"]},
    {"anyOf": [{"type": "null"}, {"type": "number"}]},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_samples_match_their_schema(schema: dict[str, Any]) -> None:
    jsonschema.validate(sample(schema), schema)


def test_the_formats_asked_for() -> None:
    assert response_schema({"type": "text"}) is None and response_schema(None) is None
    assert response_schema({"type": "json_object"}) == {}
    wrapped = {"type": "json_schema", "json_schema": {"name": "o", "schema": SCHEMAS[1]}}
    assert response_schema(wrapped) == SCHEMAS[1]
    assert json.loads(json_reply("gpt-4o-mini", {}, None, 4).text) == {"reply": "sample"}
    cut = json_reply("gpt-4o-mini", Order.model_json_schema(), 3, 4)
    assert (cut.finish_reason, cut.completion_tokens) == ("length", 3)


async def test_the_sdks_parse_helper_reads_the_answer(make_sim: SimFactory) -> None:
    sim = await make_sim()
    client = openai.AsyncOpenAI(base_url=sim.base_url_for("openai"), api_key=SECRET, max_retries=0)
    answer = await client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "an order"}],
        response_format=Order,
    )
    order = answer.choices[0].message.parsed
    assert isinstance(order, Order) and order.status == "open" and len(order.items) == 1
    assert answer.usage is not None and answer.choices[0].finish_reason == "stop"
    text = answer.choices[0].message.content or ""
    assert answer.usage.completion_tokens == count_text_tokens("gpt-4o-mini", text)
