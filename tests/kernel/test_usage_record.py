"""The usage record: its JSON round trip, and the README's table naming every field."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kernel.usage_record import FIELDS, UsageRecord

README = Path(__file__).resolve().parents[2] / "README.md"


def _table_fields() -> set[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Usage, cost and budgets")
    table = text[start : text.index("### Prices", start)]
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return names


def test_the_readme_table_names_every_field_and_no_other() -> None:
    assert _table_fields() == set(FIELDS)


texts = st.text(max_size=40)


@given(
    request_id=texts,
    user=st.none() | texts,
    cost=st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
    prompt_tokens=st.integers(min_value=0, max_value=10**9),
    success=st.booleans(),
    error_type=st.none() | texts,
)
def test_a_record_survives_its_json(
    request_id: str,
    user: str | None,
    cost: float | None,
    prompt_tokens: int,
    success: bool,
    error_type: str | None,
) -> None:
    record = UsageRecord(
        ts=1_700_000_000.25,
        request_id=request_id,
        user=user,
        cost=cost,
        prompt_tokens=prompt_tokens,
        success=success,
        error_type=error_type,
    )
    assert UsageRecord.from_json(record.to_json()) == record


def test_unknown_cost_is_written_as_null_not_left_out() -> None:
    raw = UsageRecord(ts=1.0, request_id="r").to_json()
    assert '"cost":null' in raw


def test_fields_of_a_newer_record_are_ignored_by_an_older_reader() -> None:
    raw = UsageRecord(ts=1.0, request_id="r").to_json().replace("{", '{"future_field":1,', 1)
    assert UsageRecord.from_json(raw).request_id == "r"
