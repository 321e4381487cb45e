"""What a call costs: the price table (USD per million tokens per model) and the cost of a call.

The package ships the providers' list prices for the catalog's models (``kernel/prices.json``, dated
by its ``as_of``); keys.json's ``"prices"`` section overrides or extends them
(:meth:`PriceTable.with_overrides`, parsed by keys/price_config.py). A model without a price has no
cost: :meth:`PriceTable.cost` answers None, never 0.

Money is counted in integer nano-dollars (lua.usage_records.NANOS) so that sums are exact: each
part of a cost is ``round(tokens * price_per_million * 1000)`` nano-dollars, computed in integers
from the price in nano-dollars per million tokens.

How the providers count tokens, and how :class:`router.providers.types.Usage` normalises them (the
numbers :meth:`PriceTable.cost` takes):

- OpenAI: ``prompt_tokens`` include the cached ones (``prompt_tokens_details.cached_tokens``);
  ``completion_tokens`` include the reasoning tokens. Usage keeps both as they are.
- Anthropic: ``input_tokens`` exclude the tokens read from or written to the cache
  (``cache_read_input_tokens``, ``cache_creation_input_tokens``); Usage adds all three into
  ``prompt_tokens`` and reports the cache reads as ``cached_tokens``, as OpenAI counts them.
- Gemini: ``promptTokenCount`` includes ``cachedContentTokenCount``; Usage adds the thinking tokens
  (``thoughtsTokenCount``) to ``completion_tokens``, which Google bills at the output price.

So: ``cached_tokens`` (and ``cache_write_tokens``) are part of ``prompt_tokens`` and
``reasoning_tokens`` are part of ``completion_tokens``; cached tokens are charged at
``cached_input``, cache writes at ``cache_write``, the rest of the prompt at ``input``, the whole
completion at ``output``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from kernel.errors import ConfigError
from kernel.lru import LRU
from lua.usage_records import NANOS, nanos_to_usd

#: Tokens a price is quoted for.
PER = 1_000_000
#: Fields of one model's price (keys.json's "prices" entries also take ``as_of``).
PRICE_FIELDS = ("input", "output", "cached_input", "cache_write")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Snapshot suffixes that name the same model at the same price as its base name: OpenAI's
#: ``-2024-08-06``, Anthropic's ``-20241022``, ``-latest``, Gemini's stable versions ``-001``.
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest|\d{3})$")
#: Model names whose price a table remembers (``PriceTable.lookup``).
LOOKUPS_KEPT = 256
_PREFIXES = ("openai/", "anthropic/", "gemini/", "google/", "models/")


@dataclass(frozen=True)
class LongContext:
    """The price of a call whose prompt has more than ``above_tokens`` tokens (cached ones
    included): the whole call, prompt and completion, is billed at ``price`` (Gemini 1.5 above
    128k, Gemini 2.5 Pro and Claude Sonnet 4/4.5 above 200k)."""

    above_tokens: int
    price: Price


@dataclass(frozen=True)
class Price:
    """One model's price in USD per million tokens; ``cached_input`` None: the input price,
    ``cache_write`` None: the input price; ``long_context``: the price of long prompts, if
    different. ``source``: ``package``, ``keys.json`` or the like."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    as_of: str | None = None
    source: str = "package"
    long_context: LongContext | None = None

    def for_prompt(self, prompt_tokens: int) -> Price:
        """The price a call with ``prompt_tokens`` prompt tokens is billed at."""
        tier = self.long_context
        return tier.price if tier is not None and prompt_tokens > tier.above_tokens else self

    def rates(self) -> tuple[int, int, int, int]:
        """Nano-dollars per million tokens: input, output, cached input, cache write."""
        return self._rates

    @functools.cached_property
    def _rates(self) -> tuple[int, int, int, int]:  # a price never changes: computed once
        cached = self.input if self.cached_input is None else self.cached_input
        write = self.input if self.cache_write is None else self.cache_write
        return _rate(self.input), _rate(self.output), _rate(cached), _rate(write)


@dataclass(frozen=True)
class Cost:
    """What a call cost: ``nanos`` (integer nano-dollars, exact when summed), ``usd``, the
    price it was computed with (a long prompt's: the long-context price)."""

    nanos: int
    price: Price

    @property
    def usd(self) -> float:
        return nanos_to_usd(self.nanos)


def _rate(per_million_usd: float) -> int:
    return round(per_million_usd * NANOS)


def _charge(tokens: int, rate: int) -> int:
    """``round(tokens * rate / PER)`` in integers (halves round up)."""
    return (tokens * rate + PER // 2) // PER


def _charge_ceil(tokens: int, rate: int) -> int:
    return -(-tokens * rate // PER)


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
    return value


def normalise_model(model: str) -> str:
    """The name prices are keyed by: trimmed, lower case, without a provider prefix."""
    name = model.strip().lower()
    for prefix in _PREFIXES:
        name = name.removeprefix(prefix)
    return name


class PriceTable(Mapping[str, Price]):
    """Prices by model name (immutable; :meth:`with_overrides` answers a new table)."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices = {normalise_model(name): price for name, price in (prices or {}).items()}
        #: ``lookup``'s answers by the name asked for (the table never changes); bounded, since
        #: names come from clients.
        self._found: LRU[str, tuple[Price | None]] = LRU(LOOKUPS_KEPT)

    def __getitem__(self, model: str) -> Price:
        return self._prices[normalise_model(model)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({len(self._prices)} models)"

    def lookup(self, model: str | None) -> Price | None:
        """The price of ``model``: its exact name, else (a dated snapshot, ``-latest``, Gemini's
        ``-001``) the name without that suffix; never a neighbouring model's. None if unknown."""
        if not model:
            return None
        known = self._found.get(model)
        if known is None:
            known = (self._lookup(model),)
            self._found.put(model, known)
        return known[0]

    def _lookup(self, model: str) -> Price | None:
        name = normalise_model(model)
        exact = self._prices.get(name)
        if exact is not None:
            return exact
        base = _SNAPSHOT.sub("", name)
        return self._prices.get(base) if base != name else None

    def cost(
        self,
        model: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        *,
        cache_write_tokens: int = 0,
    ) -> Cost | None:
        """The cost of a call (tokens counted as the module's docstring says, at the long-context
        price when the prompt is long); None when the model's price is unknown.
        ``reasoning_tokens`` are part of ``completion_tokens`` and change nothing; cached and
        cache-write tokens beyond the prompt are capped at it."""
        prompt = _count(prompt_tokens, "prompt_tokens")
        completion = _count(completion_tokens, "completion_tokens")
        _count(reasoning_tokens, "reasoning_tokens")
        price = self.lookup(model)
        if price is None:
            return None
        cached = min(_count(cached_tokens, "cached_tokens"), prompt)
        written = min(_count(cache_write_tokens, "cache_write_tokens"), prompt - cached)
        fresh = prompt - cached - written
        applied = price.for_prompt(prompt)
        inp, out, cached_rate, write_rate = applied.rates()
        nanos = (
            _charge(fresh, inp)
            + _charge(cached, cached_rate)
            + _charge(written, write_rate)
            + _charge(completion, out)
        )
        return Cost(nanos, applied)

    def worst_case_nanos(
        self, model: str | None, prompt_tokens: int, completion_tokens: int
    ) -> int | None:
        """What a budget reserves before the call: the whole prompt at the highest prompt price
        (input, or the cache-write price when higher) and every completion token it may produce at
        the output price, each rounded up, so the real cost never exceeds it. None if unknown."""
        prompt = _count(prompt_tokens, "prompt_tokens")
        completion = _count(completion_tokens, "completion_tokens")
        price = self.lookup(model)
        if price is None:
            return None
        inp, out, cached_rate, write_rate = price.for_prompt(prompt).rates()
        return _charge_ceil(prompt, max(inp, cached_rate, write_rate)) + _charge_ceil(
            completion, out
        )

    def with_overrides(self, prices: Mapping[str, Price], source: str | None = None) -> PriceTable:
        """A new table: this one's prices, replaced or extended by ``prices`` (whole entries, each
        marked with ``source`` when given)."""
        merged = dict(self._prices)
        for name, price in prices.items():
            merged[normalise_model(name)] = _with_source(price, source) if source else price
        return PriceTable(merged)


def _with_source(price: Price, source: str) -> Price:
    tier = price.long_context
    if tier is not None:
        tier = LongContext(tier.above_tokens, replace(tier.price, source=source))
    return replace(price, source=source, long_context=tier)


# -- parsing -----------------------------------------------------------------------------------
def _number(value: Any, *, where: str, entry: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            "must be a number (USD per million tokens)", source=where, entry=entry, field=field
        )
    if not math.isfinite(value) or value < 0:
        raise ConfigError("must be a finite number >= 0", source=where, entry=entry, field=field)
    return float(value)


def _as_of(value: Any, *, where: str, entry: str) -> str:
    if not isinstance(value, str) or not _DATE.match(value):
        raise ConfigError("must be a date YYYY-MM-DD", source=where, entry=entry, field="as_of")
    return value


def _check_fields(data: Any, allowed: tuple[str, ...], where: str, entry: str, prefix: str) -> None:
    if not isinstance(data, dict):
        what = f"field {prefix.rstrip('.')!r}: " if prefix else ""
        raise ConfigError(
            f"{what}expected an object with 'input' and 'output'", source=where, entry=entry
        )
    for name in data:
        if name not in allowed:
            raise ConfigError(
                f"unknown field (expected {', '.join(allowed)})",
                source=where,
                entry=entry,
                field=prefix + str(name),
            )


def _rates_of(data: dict[str, Any], where: str, entry: str, prefix: str) -> list[float | None]:
    values: list[float | None] = []
    for name in PRICE_FIELDS:
        field = prefix + name
        if name in data and data[name] is not None:
            values.append(_number(data[name], where=where, entry=entry, field=field))
        elif name in ("input", "output"):
            raise ConfigError("required field is missing", source=where, entry=entry, field=field)
        else:
            values.append(None)
    return values


def _long_context(data: Any, where: str, entry: str, as_of: str | None, source: str) -> LongContext:
    prefix = "long_context."
    _check_fields(data, ("above_tokens", *PRICE_FIELDS), where, entry, prefix)
    above = data.get("above_tokens")
    if isinstance(above, bool) or not isinstance(above, int) or above < 1:
        raise ConfigError(
            "must be a whole number of prompt tokens >= 1",
            source=where,
            entry=entry,
            field=prefix + "above_tokens",
        )
    inp, out, cached, write = _rates_of(data, where, entry, prefix)
    price = Price(inp or 0.0, out or 0.0, cached, write, as_of=as_of, source=source)
    return LongContext(above, price)


def parse_price(
    data: Any, *, where: str, entry: str, as_of: str | None = None, source: str = "package"
) -> Price:
    """One model's price from its JSON object (``input``, ``output`` required; ``cached_input``,
    ``cache_write``, ``as_of``, ``long_context`` optional); a ConfigError names ``where``,
    ``entry`` and the field."""
    _check_fields(data, (*PRICE_FIELDS, "as_of", "long_context"), where, entry, "")
    dated = _as_of(data["as_of"], where=where, entry=entry) if "as_of" in data else as_of
    inp, out, cached, write = _rates_of(data, where, entry, "")
    tier = data.get("long_context")
    return Price(
        input=inp or 0.0,
        output=out or 0.0,
        cached_input=cached,
        cache_write=write,
        as_of=dated,
        source=source,
        long_context=None if tier is None else _long_context(tier, where, entry, dated, source),
    )


def parse_prices(
    section: Any, *, where: str, source: str, as_of: str | None = None, label: str = "prices"
) -> dict[str, Price]:
    """A ``{"<model>": {...}}`` section: prices by model; errors name ``label.<model>``."""
    if not isinstance(section, dict):
        raise ConfigError("must be an object of model: price", source=where, field=label)
    prices: dict[str, Price] = {}
    for model, data in section.items():
        if isinstance(model, str) and model.startswith(("_", "$")):
            continue  # a comment
        entry = f"{label}.{model}"
        if not isinstance(model, str) or not model.strip() or any(c in model for c in "*?["):
            raise ConfigError("a model name (no patterns) is expected", source=where, entry=entry)
        prices[model] = parse_price(data, where=where, entry=entry, as_of=as_of, source=source)
    return prices


@functools.cache
def default_table() -> PriceTable:
    """The package's price table (kernel/prices.json), read once."""
    where = "kernel/prices.json"
    document = json.loads(resources.files("kernel").joinpath("prices.json").read_text("utf-8"))
    as_of = _as_of(document.get("as_of"), where=where, entry="as_of")
    return PriceTable(
        parse_prices(
            document.get("models"), where=where, source="package", as_of=as_of, label="models"
        )
    )
