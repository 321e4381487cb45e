"""The price table: the shipped prices cover the catalog, names resolve to their own model's price
(snapshots and prefixes, never a neighbour's), costs are exact integer nano-dollars with cached
tokens discounted, unknown prices give no cost, and overrides make a new table."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.errors import ConfigError
from kernel.prices import (
    Cost,
    Price,
    PriceTable,
    default_table,
    parse_price,
    parse_prices,
)
from lua.usage_records import NANOS
from router.providers.catalog import all_models, is_embedding_model

REPO = Path(__file__).resolve().parents[2]
TABLE = default_table()


def exact_nanos(tokens: int, per_million: float) -> int:
    """round(tokens * price * 1000) computed in fractions, halves up: the reference."""
    value = Fraction(tokens) * Fraction(str(per_million)) * 1000
    return math.floor(value + Fraction(1, 2))


# -- the shipped table -------------------------------------------------------------------------
def test_every_catalog_model_has_a_price() -> None:
    missing = [info.name for info in all_models() if TABLE.lookup(info.name) is None]
    assert missing == []


def test_the_shipped_prices_are_dated_plausible_list_prices() -> None:
    document = json.loads((REPO / "kernel" / "prices.json").read_text())
    comment = document["_comment"].lower()
    assert "list prices" in comment and "override" in comment
    assert len(TABLE) == len(document["models"])
    for name, price in TABLE.items():
        assert price.source == "package" and price.as_of == document["as_of"], name
        if is_embedding_model(name):  # input only (text-embedding-004 is free)
            assert price.output == 0 <= price.input and price.long_context is None, name
            continue
        assert 0 < price.input <= price.output, name
        assert price.cached_input is None or price.cached_input < price.input, name
        assert price.cache_write is None or price.cache_write > price.input, name
        tier = price.long_context
        if tier is not None:
            assert tier.price.input > price.input and tier.price.output > price.output, name
            assert tier.above_tokens in (128_000, 200_000) and tier.price.long_context is None
    anthropic = [n for n in TABLE if n.startswith("claude-")]
    assert anthropic and all(TABLE[n].cache_write is not None for n in anthropic)


def test_the_default_table_is_read_once() -> None:
    assert default_table() is default_table()


# -- lookup ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gemini-1.5-flash-002", "gemini-1.5-flash"),
        ("gemini-1.5-flash-8b-001", "gemini-1.5-flash-8b"),
        ("openai/gpt-4o", "gpt-4o"),
        ("anthropic/claude-opus-4-1", "claude-opus-4-1"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        (" GPT-4o ", "gpt-4o"),
    ],
)
def test_a_name_resolves_to_its_own_models_price(name: str, base: str) -> None:
    assert TABLE.lookup(name) == TABLE[base]


def test_a_snapshot_with_its_own_price_wins_over_its_base() -> None:
    old = TABLE.lookup("gpt-4o-2024-05-13")
    assert old is not None and old.input == 5.0 and old != TABLE["gpt-4o"]


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4-0613",  # an MMDD snapshot: OpenAI priced those differently
        "gpt-4-1106-preview",  # gpt-4-turbo's price, not gpt-4's: no guess
        "gpt-3.5-turbo-1106",
        "gpt-4o-audio-preview",
        "gemini-2.5-flash-preview-05-20",
        "ft:gpt-4o-mini-2024-07-18:org::abc",
        "claude-4-unknown",
        "llama-3-70b",
        "",
        None,
    ],
)
def test_no_guess_across_models(name: str | None) -> None:
    assert TABLE.lookup(name) is None
    assert TABLE.cost(name, 100, 100) is None
    assert TABLE.worst_case_nanos(name, 100, 100) is None


# -- cost --------------------------------------------------------------------------------------
def test_a_worked_example() -> None:
    # gpt-4o: 600 fresh prompt tokens at 2.50, 400 cached at 1.25, 500 completion at 10.00
    cost = TABLE.cost("gpt-4o-2024-08-06", 1000, 500, cached_tokens=400)
    assert cost == Cost(1_500_000 + 500_000 + 5_000_000, TABLE["gpt-4o"])
    assert cost.usd == 0.007


def test_cached_tokens_are_discounted_and_reasoning_changes_nothing() -> None:
    full = TABLE.cost("gpt-4.1", 10_000, 1000)
    cached = TABLE.cost("gpt-4.1", 10_000, 1000, cached_tokens=8000)
    reasoning = TABLE.cost("gpt-4.1", 10_000, 1000, reasoning_tokens=900)
    assert full is not None and cached is not None and reasoning is not None
    assert full.nanos - cached.nanos == exact_nanos(8000, 2.0) - exact_nanos(8000, 0.5)
    assert reasoning.nanos == full.nanos


def test_a_model_without_cached_price_charges_cached_tokens_at_input() -> None:
    assert TABLE["gpt-4"].cached_input is None
    assert TABLE.cost("gpt-4", 1000, 0, cached_tokens=1000) == TABLE.cost("gpt-4", 1000, 0)


def test_anthropic_cache_writes_cost_their_own_price() -> None:
    # claude-sonnet-4-5: 1000 prompt tokens of which 200 read (0.30) and 300 written (3.75)
    cost = TABLE.cost("claude-sonnet-4-5", 1000, 100, cached_tokens=200, cache_write_tokens=300)
    expected = (
        exact_nanos(500, 3.0)
        + exact_nanos(200, 0.3)
        + exact_nanos(300, 3.75)
        + exact_nanos(100, 15.0)
    )
    assert cost is not None and cost.nanos == expected


@pytest.mark.parametrize(
    ("model", "above", "base", "long"),
    [
        ("gemini-2.5-pro", 200_000, (1.25, 10.0), (2.5, 15.0)),
        ("claude-sonnet-4-5-20250929", 200_000, (3.0, 15.0), (6.0, 22.5)),
        ("gemini-1.5-pro-002", 128_000, (1.25, 5.0), (2.5, 10.0)),
    ],
)
def test_a_long_prompt_bills_the_whole_call_at_the_long_context_price(
    model: str, above: int, base: tuple[float, float], long: tuple[float, float]
) -> None:
    at_limit = TABLE.cost(model, above, 1000)
    beyond = TABLE.cost(model, above + 1, 1000)
    assert at_limit is not None and beyond is not None
    assert at_limit.nanos == exact_nanos(above, base[0]) + exact_nanos(1000, base[1])
    assert beyond.nanos == exact_nanos(above + 1, long[0]) + exact_nanos(1000, long[1])
    worst = TABLE.worst_case_nanos(model, above + 1, 1000)
    assert worst is not None and worst >= beyond.nanos
    at_limit_worst = TABLE.worst_case_nanos(model, above, 1000)
    assert at_limit_worst is not None and at_limit.nanos <= at_limit_worst < beyond.nanos


def test_zero_tokens_of_a_known_model_cost_zero_not_unknown() -> None:
    assert TABLE.cost("gpt-4o", 0, 0) == Cost(0, TABLE["gpt-4o"])


def test_cached_tokens_beyond_the_prompt_are_capped() -> None:
    assert TABLE.cost("gpt-4o", 100, 0, cached_tokens=500) == TABLE.cost(
        "gpt-4o", 100, 0, cached_tokens=100
    )


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_token_counts_must_be_whole_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="prompt_tokens"):
        TABLE.cost("gpt-4o", bad, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cached_tokens"):
        TABLE.cost("gpt-4o", 10, 0, cached_tokens=bad)  # type: ignore[arg-type]


MODELS = sorted(TABLE)


@given(
    model=st.sampled_from(MODELS),
    prompt=st.integers(0, 2_000_000),
    completion=st.integers(0, 200_000),
    cached_share=st.fractions(0, 1),
)
def test_costs_are_exact_and_below_the_worst_case(
    model: str, prompt: int, completion: int, cached_share: Fraction
) -> None:
    price = TABLE[model].for_prompt(prompt)
    cached = int(prompt * cached_share)
    cost = TABLE.cost(model, prompt, completion, cached_tokens=cached)
    assert cost is not None
    cached_price = price.input if price.cached_input is None else price.cached_input
    assert cost.nanos == (
        exact_nanos(prompt - cached, price.input)
        + exact_nanos(cached, cached_price)
        + exact_nanos(completion, price.output)
    )
    worst = TABLE.worst_case_nanos(model, prompt, completion)
    assert worst is not None and cost.nanos <= worst
    written = TABLE.cost(model, prompt, completion, cache_write_tokens=prompt)
    assert written is not None and written.nanos <= worst


def test_the_worst_case_is_the_prompt_at_input_and_the_completion_at_output() -> None:
    assert TABLE.worst_case_nanos("gpt-4o", 1000, 2000) == exact_nanos(1000, 2.5) + exact_nanos(
        2000, 10.0
    )
    # Anthropic: a prompt written to the cache costs more than input, so the reservation uses it
    assert TABLE.worst_case_nanos("claude-opus-4-5", 1000, 0) == exact_nanos(1000, 6.25)
    # rounded up, never down: a reservation covers the real cost
    tiny = PriceTable({"tiny": Price(0.0004, 0.0004)})  # 0.4 nano-dollars a token
    assert tiny.worst_case_nanos("tiny", 1, 1) == 2
    assert tiny.cost("tiny", 1, 1) == Cost(0, tiny["tiny"])


def test_sums_of_many_calls_are_exact() -> None:
    calls = [TABLE.cost("gpt-4o-mini", 333, 77, cached_tokens=111) for _ in range(10_000)]
    total = sum(c.nanos for c in calls if c is not None)
    assert total == 10_000 * (
        exact_nanos(222, 0.15) + exact_nanos(111, 0.075) + exact_nanos(77, 0.6)
    )
    assert total % 1 == 0 and isinstance(total, int) and NANOS == 10**9


# -- overrides ---------------------------------------------------------------------------------
def test_an_override_may_carry_its_own_long_context_price() -> None:
    data = {
        "input": 1.0,
        "output": 2.0,
        "long_context": {"above_tokens": 100, "input": 3.0, "output": 4.0},
    }
    table = TABLE.with_overrides(parse_prices({"m": data}, where="f", source="x"), "keys.json")
    price = table["m"]
    assert price.long_context is not None and price.long_context.price.source == "keys.json"
    assert table.cost("m", 100, 10) == Cost(100 * 1000 + 10 * 2000, price)
    assert table.cost("m", 101, 10) == Cost(101 * 3000 + 10 * 4000, price.long_context.price)


def test_overrides_make_a_new_table_and_reach_snapshots() -> None:
    mine = Price(2.0, 8.0, as_of="2026-01-01")
    table = TABLE.with_overrides({"GPT-4o": mine, "my-finetune": Price(3.0, 12.0)}, "keys.json")
    assert table.lookup("gpt-4o-2024-08-06") == Price(
        2.0, 8.0, None, None, "2026-01-01", "keys.json"
    )
    assert table.lookup("my-finetune") == Price(3.0, 12.0, source="keys.json")
    assert TABLE.lookup("gpt-4o") == TABLE["gpt-4o"] and TABLE.lookup("my-finetune") is None
    assert table.lookup("gpt-4o-2024-05-13") == TABLE["gpt-4o-2024-05-13"]  # its own entry
    assert len(table) == len(TABLE) + 1
    assert PriceTable().lookup("gpt-4o") is None


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"input": -1, "output": 1}, "input", ">= 0"),
        ({"input": "2.5", "output": 1}, "input", "must be a number"),
        ({"input": True, "output": 1}, "input", "must be a number"),
        ({"input": float("nan"), "output": 1}, "input", "finite"),
        ({"input": 1, "output": float("inf")}, "output", "finite"),
        ({"input": 1}, "output", "required"),
        ({"input": 1, "output": 2, "cached": 0.5}, "cached", "unknown field"),
        ({"input": 1, "output": 2, "as_of": "yesterday"}, "as_of", "YYYY-MM-DD"),
        ({"input": 1, "output": 2, "cache_write": -0.1}, "cache_write", ">= 0"),
        (
            {"input": 1, "output": 2, "long_context": {"input": 2, "output": 4}},
            "long_context.above_tokens",
            ">= 1",
        ),
        (
            {"input": 1, "output": 2, "long_context": {"above_tokens": 10, "input": 2}},
            "long_context.output",
            "required",
        ),
        (
            {
                "input": 1,
                "output": 2,
                "long_context": {
                    "above_tokens": 10,
                    "input": 2,
                    "output": 4,
                    "as_of": "2026-01-01",
                },
            },
            "long_context.as_of",
            "unknown field",
        ),
        (
            {
                "input": 1,
                "output": 2,
                "long_context": {"above_tokens": 1.5, "input": 2, "output": 4},
            },
            "long_context.above_tokens",
            "whole number",
        ),
    ],
)
def test_a_bad_price_names_file_entry_and_field(data: object, field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_price(data, where="keys.json", entry="prices.gpt-4o")
    error = caught.value
    assert (error.source, error.entry, error.field) == ("keys.json", "prices.gpt-4o", field)
    assert reason in str(error)


def test_a_section_refuses_patterns_and_non_objects() -> None:
    with pytest.raises(ConfigError, match="no patterns") as caught:
        parse_prices({"gpt-4o*": {"input": 1, "output": 1}}, where="f", source="keys.json")
    assert caught.value.entry == "prices.gpt-4o*"
    with pytest.raises(ConfigError, match="must be an object") as caught:
        parse_prices([], where="f", source="keys.json")
    assert caught.value.field == "prices"
    with pytest.raises(ConfigError, match="expected an object"):
        parse_prices({"gpt-4o": 2.5}, where="f", source="keys.json")


# -- lookups remembered (issue 18: the router's CPU per call) ------------------------------------


def test_lookups_are_remembered_bounded_and_equal_the_tables() -> None:
    from kernel import prices

    table = PriceTable({"m-1": Price(1.0, 2.0)})
    assert table.lookup("m-1") == Price(1.0, 2.0)
    assert table.lookup("M-1-2024-08-06") is table.lookup("m-1")  # a dated snapshot: its base
    assert table.lookup("unknown") is None
    assert table.lookup("unknown") is None  # remembered as unknown too
    for i in range(prices.LOOKUPS_KEPT + 50):  # names made up by clients: the memory is bounded
        assert table.lookup(f"made-up-{i}") is None
    assert len(table._found) == prices.LOOKUPS_KEPT
    assert "M-1-2024-08-06" not in table._found  # the oldest went first


def test_a_prices_rates_are_computed_once_and_unchanged() -> None:
    price = Price(0.15, 0.6, cached_input=0.075)
    assert price.rates() == (
        round(0.15 * NANOS),
        round(0.6 * NANOS),
        round(0.075 * NANOS),
        round(0.15 * NANOS),
    )
    assert price.rates() is price.rates()
    assert price == Price(0.15, 0.6, cached_input=0.075)  # equality and hashing as before
    assert hash(price) == hash(Price(0.15, 0.6, cached_input=0.075))
