"""keys.json's "prices" section: it overrides and extends the package's prices on KeyConfig.prices,
bad entries give a ConfigError naming file, entry and field, and saving keys keeps the section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import ConfigError
from kernel.prices import Price, default_table
from keys.config import load_key_config, save_keys_file
from keys.models import APIKey

REPO = Path(__file__).resolve().parents[2]
KEY = {"key_id": "k1", "provider": "openai", "model_name": "gpt-4o", "rpm": 60}


def load(tmp_path: Path, document: Any, environ: dict[str, str] | None = None) -> Any:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return load_key_config(path, environ=environ or {})


def test_keys_json_prices_override_and_extend_the_package(tmp_path: Path) -> None:
    prices = {
        "gpt-4o": {"input": 2.0, "output": 8.0, "cached_input": 1.0, "as_of": "2026-11-01"},
        "my-finetune": {"input": 3.0, "output": 12.0},
    }
    config = load(tmp_path, {"keys": [KEY], "prices": prices})
    assert config.prices.lookup("gpt-4o-2024-08-06") == Price(
        2.0, 8.0, 1.0, None, "2026-11-01", "keys.json"
    )
    assert config.prices.lookup("my-finetune") == Price(3.0, 12.0, source="keys.json")
    assert config.prices.lookup("gpt-4o-mini") == default_table()["gpt-4o-mini"]
    cost = config.prices.cost("gpt-4o", 1000, 1000, cached_tokens=500)
    assert cost is not None and cost.nanos == 1_000_000 + 500_000 + 8_000_000
    assert default_table().lookup("my-finetune") is None, "the package table is unchanged"


def test_without_a_prices_section_the_package_table_is_used(tmp_path: Path) -> None:
    assert load(tmp_path, {"keys": [KEY]}).prices is default_table()
    assert load_key_config(None, environ={"OPENAI_API_KEY": "x" * 10}).prices is default_table()


def test_a_file_may_hold_only_prices(tmp_path: Path) -> None:
    config = load(tmp_path, {"prices": {"m": {"input": 1, "output": 1}}})
    assert config.keys == [] and config.prices.lookup("m") is not None


@pytest.mark.parametrize(
    ("prices", "entry", "field", "reason"),
    [
        ({"gpt-4o": {"input": -2.5, "output": 10}}, "prices.gpt-4o", "input", ">= 0"),
        ({"gpt-4o": {"input": "cheap", "output": 10}}, "prices.gpt-4o", "input", "a number"),
        ({"gpt-4o": {"input": 1, "outptu": 10}}, "prices.gpt-4o", "outptu", "unknown field"),
        ({"gpt-4o": {"input": 1}}, "prices.gpt-4o", "output", "required field is missing"),
        ({"gpt-4o": {"input": 1, "output": 1, "as_of": 2026}}, "prices.gpt-4o", "as_of", "date"),
        ({"gpt-4o": [1, 2]}, "prices.gpt-4o", None, "expected an object"),
    ],
)
def test_a_bad_price_names_file_entry_and_field(
    tmp_path: Path, prices: Any, entry: str, field: str | None, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"keys": [KEY], "prices": prices})
    error = caught.value
    assert error.source == str(tmp_path / "keys.json")
    assert (error.entry, error.field) == (entry, field)
    assert reason in str(error) and str(tmp_path / "keys.json") in str(error)


def test_a_prices_section_that_is_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be an object") as caught:
        load(tmp_path, {"keys": [KEY], "prices": [{"model": "gpt-4o"}]})
    assert caught.value.field == "prices"


def test_saving_keys_keeps_the_prices_budgets_and_comments(tmp_path: Path) -> None:
    document = {
        "_comment": "ours",
        "keys": [KEY],
        "prices": {"my-finetune": {"input": 3.0, "output": 12.0}},
        "budgets": {"global": {"limit_usd": 100, "period": "month"}},
    }
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    save_keys_file(path, [APIKey.model_validate({**KEY, "key_id": "k2"})])
    saved = json.loads(path.read_text())
    assert [k["key_id"] for k in saved["keys"]] == ["k2"]
    assert {name: saved[name] for name in ("_comment", "prices", "budgets")} == {
        name: document[name] for name in ("_comment", "prices", "budgets")
    }
    config = load_key_config(path, environ={})
    assert config.prices.lookup("my-finetune") is not None and len(config.budgets) == 1


def test_the_example_file_has_prices_and_budgets() -> None:
    config = load_key_config(REPO / "keys.json.example", environ={})
    assert any(price.source == "keys.json" for price in config.prices.values())
    assert {spec.scope for spec in config.budgets} == {"global", "user", "team", "vkey"}
