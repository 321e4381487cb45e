"""APIKey: validation, model bindings and patterns, reprs without secrets, and the keys.json round
trip through save_keys_file / load_keys_file (atomic: a failed write leaves the old file)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from keys.config import load_keys_file, save_keys_file
from keys.models import APIKey, ModelBinding, key_serves, provider_of_model


def make_key(**fields: Any) -> APIKey:
    data: dict[str, Any] = {"key_id": "k1", "model_name": "gpt-4o", "provider": "openai"}
    data.update(fields)
    return APIKey.model_validate(data)


def error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in err["loc"]) for err in exc.errors()}


# -- validation -----------------------------------------------------------------------------------


def test_document_003_fields_and_defaults() -> None:
    key = APIKey.model_validate(
        {
            "key_id": "flash_01",
            "model_name": "gemini-2.5-flash",
            "provider": "gemini",
            "rpm": 60,
            "tpm": 1000000,
            "rpd": 500,
            "active": True,
            "tags": {"region": "us-east", "workload": "light", "tier": "standard"},
            "created_at": "2024-01-01T00:00:00",
            "updated_at": "2024-01-01T00:00:00",
        }
    )
    assert (key.rpm, key.tpm, key.rpd) == (60, 1_000_000, 500)
    assert key.created_at == datetime(2024, 1, 1)
    assert key.group == "flash_01"  # quota group defaults to the key itself
    assert key.reset_tz == "America/Los_Angeles"  # Gemini's day starts at midnight Pacific
    assert (key.weight, key.priority, key.strict) == (1.0, 1, False)


def test_defaults_of_a_minimal_key() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    key = make_key()
    assert key.active is True and key.tags == {}
    assert key.rpm is key.tpm is key.rpd is None
    assert key.created_at >= before and key.created_at.tzinfo is not None
    assert key.reset_tz == "UTC"


def test_document_002_limit_names_are_accepted() -> None:
    key = make_key(rpm_limit=15, tpm_limit=1000, rpd_limit=10)
    assert (key.rpm, key.tpm, key.rpd) == (15, 1000, 10)


def test_tags_become_strings() -> None:
    assert make_key(tags={"tier": 1, "beta": True}).tags == {"tier": "1", "beta": "True"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rpm": 0}, "rpm"),
        ({"tpm": -1}, "tpm"),
        ({"rpd": "many"}, "rpd"),
        ({"provider": "mistral"}, "provider"),
        ({"key_id": ""}, "key_id"),
        ({"key_id": "a b"}, "key_id"),
        ({"key_id": "x" * 129}, "key_id"),
        ({"model_name": "gpt 4o"}, "model_name"),
        ({"weight": 0}, "weight"),
        ({"priority": 0}, "priority"),
        ({"priority": 101}, "priority"),
        ({"quota_group": "a/b"}, "quota_group"),
        ({"base_url": "localhost:8080"}, "base_url"),
        ({"day_reset_tz": "Mars/Olympus"}, "day_reset_tz"),
        ({"models": [{"model": "gpt-4o", "priority": 0}]}, "models.0.priority"),
        ({"models": [{"model": "gpt-4o", "temperature": 1}]}, "models.0.temperature"),
        ({"api_key": "anything"}, "api_key"),  # a key holds no secret: the field does not exist
        ({"secret": "anything"}, "secret"),
    ],
)
def test_invalid_values_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_key(**fields)
    assert field in error_fields(caught.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rpm_burst": 10}, "rpm_burst needs rpm"),
        ({"tpm_burst": 10}, "tpm_burst needs tpm"),
        ({"models": [{"model": "gpt-4o"}, {"model": "gpt-4o"}]}, "listed twice"),
    ],
)
def test_cross_field_rules(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_key(**fields)


def test_assignment_is_validated_too() -> None:
    key = make_key(rpm=10)
    with pytest.raises(ValidationError):
        key.rpm = -1
    assert key.rpm == 10


def test_base_url_loses_its_trailing_slash() -> None:
    assert make_key(base_url="https://example.openai.azure.com/").base_url == (
        "https://example.openai.azure.com"
    )


# -- bindings and patterns ------------------------------------------------------------------------


def test_without_models_the_key_serves_model_name_with_its_own_weight_and_priority() -> None:
    key = make_key(weight=3, priority=2)
    assert key.bindings == [
        ModelBinding.model_validate({"model": "gpt-4o", "weight": 3, "priority": 2})
    ]
    assert key.binding_for("gpt-4o") is not None
    assert key.binding_for("gpt-4o-mini") is None


def test_exact_names_win_over_patterns() -> None:
    key = make_key(
        models=[
            {"model": "gpt-4o*", "priority": 2},
            {"model": "gpt-4o-mini", "priority": 1, "weight": 7},
            {"model": "*", "priority": 3},
        ]
    )
    assert key.binding_for("gpt-4o-mini") == ModelBinding.model_validate(
        {"model": "gpt-4o-mini", "priority": 1, "weight": 7}
    )
    binding = key.binding_for("gpt-4o-2024-08-06")
    assert binding is not None and binding.model == "gpt-4o*"
    fallback = key.binding_for("o3-mini")
    assert fallback is not None and fallback.model == "*"


def test_an_openai_key_bound_to_star_serves_openai_and_unknown_models_only() -> None:
    key = make_key(models=[{"model": "*"}])
    assert key_serves(key, "gpt-4o") is not None
    assert key_serves(key, "my-company-finetune") is not None
    assert key_serves(key, "claude-3-opus") is None
    assert key_serves(key, "gemini-2.0-flash") is None


def test_an_azure_key_bound_to_star_serves_openai_models() -> None:
    key = make_key(provider="azure", models=[{"model": "*"}])
    assert key_serves(key, "gpt-4o-mini") is not None
    assert key_serves(key, "claude-3-5-haiku-latest") is None


def test_an_exact_binding_is_served_whatever_the_name_says() -> None:
    # an operator who binds a Gemini key to "gpt-4" on purpose (document 002's aliasing) gets it
    key = make_key(provider="gemini", model_name="gemini-2.0-flash", models=[{"model": "gpt-4"}])
    assert key_serves(key, "gpt-4") is not None


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("GPT-4o-mini", "openai"),
        ("o3-mini", "openai"),
        ("chatgpt-4o-latest", "openai"),
        ("claude-3-opus", "anthropic"),
        ("gemini-2.5-pro", "gemini"),
        ("models/gemini-2.0-flash", "gemini"),
        ("llama-3.1-70b", None),
    ],
)
def test_provider_of_model(model: str, provider: str | None) -> None:
    assert provider_of_model(model) == provider


# -- no secret in reprs ---------------------------------------------------------------------------


def test_repr_and_str_show_identity_and_limits_only() -> None:
    key = make_key(rpm=500, tpm=30000, secret_ref="env:OPENAI_PROJECT_A_KEY", tags={"t": "x"})
    text = repr(key)
    assert text == (
        "APIKey(key_id='k1', provider='openai', model_name='gpt-4o', rpm=500, tpm=30000, "
        "rpd=None, active=True)"
    )
    assert str(key) == text


# -- metadata and the keys.json round trip --------------------------------------------------------


def test_metadata_leaves_out_unset_fields() -> None:
    data = make_key().metadata()
    assert set(data) == {
        "key_id",
        "model_name",
        "provider",
        "active",
        "created_at",
        "updated_at",
        "weight",
        "priority",
        "strict",
    }


def test_metadata_round_trips_through_keys_json(tmp_path: Path) -> None:
    keys = [
        make_key(),
        make_key(
            key_id="gemini-flash-01",
            provider="gemini",
            model_name="gemini-2.5-flash",
            rpm=10,
            tpm=250000,
            rpd=1500,
            tags={"tier": "free", "pool": "flash"},
            quota_group="gemini-project-1",
            weight=2.5,
            priority=3,
            base_url="http://127.0.0.1:9000",
            models=[
                {"model": "gemini-2.5-flash", "weight": 10},
                {"model": "gemini-*", "priority": 2},
            ],
            rpm_burst=5,
            strict=True,
            day_reset_tz="Europe/Paris",
            secret_ref="GEMINI_KEY_1",
            created_at="2024-01-01T00:00:00",
            updated_at="2024-06-01T12:30:00+02:00",
            active=False,
        ),
    ]
    path = tmp_path / "keys.json"
    routing = {"aliases": {"fast": "gemini-2.5-flash"}}
    save_keys_file(path, keys, routing)
    loaded, loaded_routing = load_keys_file(path)
    assert loaded == keys
    assert loaded_routing == routing
    assert [k.metadata() for k in loaded] == [k.metadata() for k in keys]


def test_save_replaces_the_file_and_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    save_keys_file(path, [make_key()])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a new file: its owner only
    path.chmod(0o640)
    save_keys_file(path, [make_key(key_id="k2")])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [k.key_id for k in load_keys_file(path)[0]] == ["k2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json"]


def test_save_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "router" / "keys.json"
    save_keys_file(path, [make_key()])
    assert [k.key_id for k in load_keys_file(path)[0]] == ["k1"]


@pytest.mark.parametrize("failing", ["dump", "fsync", "replace"])
def test_a_failed_save_leaves_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "keys.json"
    save_keys_file(path, [make_key()])
    before = path.read_bytes()

    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    if failing == "dump":

        def partial_dump(document: Any, handle: Any, **_kwargs: Any) -> None:
            handle.write(json.dumps(document)[:20])  # half a document reaches the temp file
            fail()

        monkeypatch.setattr(json, "dump", partial_dump)
    elif failing == "fsync":
        monkeypatch.setattr(os, "fsync", fail)
    else:
        monkeypatch.setattr(os, "replace", fail)

    with pytest.raises(OSError, match="No space left"):
        save_keys_file(path, [make_key(key_id="k2"), make_key(key_id="k3")])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [k.key_id for k in load_keys_file(path)[0]] == ["k1"]
    assert os.listdir(tmp_path) == ["keys.json"], "the temporary file is removed"
