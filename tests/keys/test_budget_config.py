"""Budgets from keys.json's "budgets" section and the BUDGETS setting: parsed into BudgetSpec (their
store field and record as lua.usage_records defines them), merged with BUDGETS winning per entry,
and bad entries refused with an error naming the file (or BUDGETS), the entry and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import ConfigError
from kernel.settings import Settings
from keys.budget_config import (
    BudgetSpec,
    budgets_from_settings,
    merge_budgets,
    parse_budgets,
)
from keys.config import load_key_config
from lua.usage_records import BudgetRecord, budget_field, parse_budget_field

KEY = {"key_id": "k1", "provider": "openai", "model_name": "gpt-4o", "rpm": 60}
SECTION = {
    "global": {"limit_usd": 500, "period": "month"},
    "user:alice": {
        "limit_usd": 5,
        "period": "day",
        "timezone": "America/New_York",
        "alert_at": 0.9,
    },
    "team:ml": {"limit_usd": 200.5},
    "vkey:vk-0123456789ab": {"limit_usd": 20, "period": "day", "timezone": "Asia/Kolkata"},
}


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_a_section_becomes_budget_specs(tmp_path: Path) -> None:
    path = write(tmp_path, {"keys": [KEY], "budgets": SECTION})
    config = load_key_config(path, environ={"BUDGET_ALERT_SHARE": "0.75"})
    specs = {spec.name: spec for spec in config.budgets}
    assert list(specs) == list(SECTION)
    where = str(path)
    assert specs["global"] == BudgetSpec("global", "", 500.0, "month", "UTC", 0.75, where)
    assert specs["user:alice"] == BudgetSpec(
        "user", "alice", 5.0, "day", "America/New_York", 0.9, where
    )
    assert specs["team:ml"] == BudgetSpec("team", "ml", 200.5, "month", "UTC", 0.75, where)
    vkey = specs["vkey:vk-0123456789ab"]
    assert vkey.field == budget_field("vkey", "vk-0123456789ab")
    assert vkey.record() == BudgetRecord(20_000_000_000, "day", "Asia/Kolkata", 0.75)
    assert BudgetRecord.decode(vkey.record().encode()) == vkey.record()
    assert specs["global"].field == "global"


def test_an_id_with_separators_round_trips_through_its_field() -> None:
    specs = parse_budgets({"team:ml|ops;eu:1": {"limit_usd": 1}}, where="f")
    (spec,) = specs.values()
    assert spec.ident == "ml|ops;eu:1"
    assert parse_budget_field(spec.field) == ("team", "ml|ops;eu:1")
    assert "|" not in spec.field and ";" not in spec.field  # the reservation list's separators


def test_budgets_merge_with_the_setting_winning_per_entry(tmp_path: Path) -> None:
    path = write(tmp_path, {"keys": [KEY], "budgets": SECTION})
    env = {
        "BUDGETS": json.dumps(
            {"user:alice": {"limit_usd": 9, "period": "month"}, "user:bob": {"limit_usd": 1}}
        )
    }
    config = load_key_config(path, environ=env)
    specs = {spec.name: spec for spec in config.budgets}
    assert set(specs) == {*SECTION, "user:bob"}
    assert specs["user:alice"] == BudgetSpec("user", "alice", 9.0, "month", "UTC", 0.8, "BUDGETS")
    assert specs["global"].source == str(path)


def test_library_callers_set_budgets_without_a_file(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"OPENAI_API_KEY": "x" * 12, "BUDGETS": json.dumps({"global": {"limit_usd": 3}})}
    (spec,) = load_key_config(None, environ=env).budgets
    assert (spec.scope, spec.limit_usd, spec.source) == ("global", 3.0, "BUDGETS")
    assert load_key_config(None, environ={"OPENAI_API_KEY": "x" * 12}).budgets == []


def test_merge_keeps_one_spec_per_field() -> None:
    first = parse_budgets({"global": {"limit_usd": 1}, "team:a": {"limit_usd": 2}}, where="a")
    second = parse_budgets({"global": {"limit_usd": 3}}, where="b")
    merged = merge_budgets(first, second)
    assert [(s.name, s.limit_usd, s.source) for s in merged] == [
        ("global", 3.0, "b"),
        ("team:a", 2.0, "a"),
    ]


@pytest.mark.parametrize(
    ("section", "entry", "field", "reason"),
    [
        ({"user:al": {"limit_usd": -5}}, "user:al", "limit_usd", "above 0"),
        ({"user:al": {"limit_usd": 0}}, "user:al", "limit_usd", "above 0"),
        ({"user:al": {"limit_usd": "5"}}, "user:al", "limit_usd", "a number"),
        ({"user:al": {"limit_usd": True}}, "user:al", "limit_usd", "a number"),
        ({"user:al": {"period": "day"}}, "user:al", "limit_usd", "required field is missing"),
        ({"user:al": {"limit_usd": 5, "period": "week"}}, "user:al", "period", "'day' or"),
        ({"user:al": {"limit_usd": 5, "timezone": "Mars/Base"}}, "user:al", "timezone", "IANA"),
        ({"user:al": {"limit_usd": 5, "timezone": "../etc"}}, "user:al", "timezone", "IANA"),
        ({"user:al": {"limit_usd": 5, "alert_at": 80}}, "user:al", "alert_at", "at most 1"),
        ({"user:al": {"limit_usd": 5, "alert_at": 0}}, "user:al", "alert_at", "above 0"),
        ({"user:al": {"limit_usd": 5, "limit": 6}}, "user:al", "limit", "unknown field"),
        ({"users:al": {"limit_usd": 5}}, "users:al", None, "user, team or vkey"),
        ({"alice": {"limit_usd": 5}}, "alice", None, "'<scope>:<id>'"),
        ({"global:x": {"limit_usd": 5}}, "global:x", None, "'<scope>:<id>'"),
        ({"team:": {"limit_usd": 5}}, "team:", None, "needs an id"),
        ({"team:a\tb": {"limit_usd": 5}}, "team:a\tb", None, "control character"),
        ({"user:al": 5}, "user:al", None, "expected an object"),
    ],
)
def test_a_bad_budget_names_file_entry_and_field(
    tmp_path: Path, section: Any, entry: str, field: str | None, reason: str
) -> None:
    path = write(tmp_path, {"keys": [KEY], "budgets": section})
    with pytest.raises(ConfigError) as caught:
        load_key_config(path, environ={})
    error = caught.value
    assert (error.source, error.entry, error.field) == (str(path), entry, field)
    assert reason in str(error) and str(path) in str(error)
    # the same entry given by BUDGETS names BUDGETS
    with pytest.raises(ConfigError) as caught:
        budgets_from_settings(Settings.from_env({"BUDGETS": json.dumps(section)}))
    assert (caught.value.source, caught.value.entry, caught.value.field) == (
        "BUDGETS",
        entry,
        field,
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [('{"global": {', "invalid JSON at line 1"), ('["global"]', "must be an object")],
)
def test_a_malformed_setting_names_budgets(raw: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        load_key_config(None, environ={"BUDGETS": raw, "OPENAI_API_KEY": "x" * 12})
    assert caught.value.source == "BUDGETS"


def test_comments_are_skipped() -> None:
    specs = parse_budgets({"_comment": "text", "global": {"limit_usd": 1}}, where="f")
    assert list(specs) == ["global"]
