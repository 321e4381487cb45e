"""The model catalog: families resolve by prefix, unknown models say so."""

from __future__ import annotations

import pytest

from router.providers import catalog
from router.providers.catalog import (
    ModelInfo,
    all_models,
    context_window,
    max_output_tokens,
    model_info,
    models_fitting,
    register_model,
)


@pytest.mark.parametrize(
    ("model", "family", "window"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", 128_000),
        ("gpt-4-0613", "gpt-4", 8_192),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet", 200_000),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", 200_000),
        ("models/gemini-1.5-pro-latest", "gemini-1.5-pro", 2_097_152),
        ("gemini-2.0-flash", "gemini-2.0-flash", 1_048_576),
    ],
)
def test_families_resolve_by_longest_prefix(model: str, family: str, window: int) -> None:
    info = model_info(model)
    assert info is not None and info.name == family and info.context_window == window


def test_unknown_models_use_the_default() -> None:
    assert model_info("my-finetune") is None
    assert context_window("my-finetune", 4096) == 4096 and max_output_tokens("my-finetune") is None


def test_models_fitting_lists_smallest_windows_first() -> None:
    fits = models_fitting(150_000, provider="openai")
    assert fits and all(m.context_window >= 150_000 and m.provider == "openai" for m in fits)
    assert [m.context_window for m in fits] == sorted(m.context_window for m in fits)
    assert "gpt-4o" not in {m.name for m in fits}


def test_register_model_adds_an_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    # the process-wide catalog gets its old entries back after the test (other tests read it)
    monkeypatch.setattr(catalog, "_CATALOG", dict(catalog._CATALOG))
    register_model(ModelInfo("acme-large", "openai", 32_000, 4_000))
    assert context_window("acme-large-v2") == 32_000
    assert any(m.name == "acme-large" for m in all_models())
