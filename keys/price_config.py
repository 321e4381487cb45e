"""keys.json's ``"prices"`` section: prices that override or extend the package's price table.

    "prices": {
      "gpt-4o": {"input": 2.5, "output": 10.0, "cached_input": 1.25, "as_of": "2026-01-01"},
      "my-finetune": {"input": 3.0, "output": 12.0}
    }

Each entry replaces the package's price of that model whole (an omitted ``cached_input`` means
cached tokens cost the input price) or adds a model the package does not know. Prices are USD per
million tokens, numbers >= 0; ``cache_write`` (Anthropic's cache writes) and ``as_of``
(YYYY-MM-DD) are optional. Errors name the file, the entry (``prices.<model>``) and the field.
"""

from __future__ import annotations

from typing import Any

from kernel.prices import Price, PriceTable, default_table, parse_prices

#: The ``source`` of a price that keys.json set.
SOURCE = "keys.json"


def prices_of(data: Any, *, where: str) -> dict[str, Price]:
    """The prices of a parsed keys.json document (empty without a ``prices`` section)."""
    if not isinstance(data, dict) or "prices" not in data:
        return {}
    return parse_prices(data["prices"], where=where, source=SOURCE)


def price_table(overrides: dict[str, Price] | None = None) -> PriceTable:
    """The package's table with keys.json's prices over it."""
    table = default_table()
    return table.with_overrides(overrides, SOURCE) if overrides else table
