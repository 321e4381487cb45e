"""Settings: one typed field per environment variable, the defaults of documents 003/004, empty
variables as unset, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.errors import ConfigError
from kernel.settings import Settings, get_settings
from tests import keygen


def test_defaults_of_documents_003_and_004() -> None:
    settings = Settings.from_env({})
    assert settings.CONVERSATION_TTL_SECONDS == 86400
    assert settings.USER_RPM_DEFAULT == 10
    assert settings.GLOBAL_RPM_MAX == 1000
    assert settings.SECRET_STORE_TYPE == "env"
    assert settings.AWS_REGION == "us-east-1"
    assert settings.VAULT_ADDR is None and settings.VAULT_TOKEN is None
    assert settings.AZURE_VAULT_URL is None
    # feature flags: unset, so neither single-key mode nor forced rotation
    assert settings.ENABLE_KEY_ROTATION is None
    assert settings.LLM_MULTI_KEY_ROUTER_ENABLED is None
    assert settings.rotation_enabled is None


def test_no_redis_url_means_the_embedded_store() -> None:
    # Documents 003/004 default REDIS_URL to a local server; this product runs with none instead.
    settings = Settings.from_env({})
    assert settings.REDIS_URL is None and settings.uses_embedded_store
    assert not Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0"}).uses_embedded_store


def test_values_are_typed() -> None:
    settings = Settings.from_env(
        {
            "CONVERSATION_TTL_SECONDS": "3600",
            "USER_RPM_DEFAULT": "25",
            "GLOBAL_RPM_MAX": "5000",
            "REDIS_TIMEOUT_SECONDS": "2.5",
            "REDIS_CLUSTER": "true",
            "ENABLE_KEY_ROTATION": "yes",
            "SECRET_STORE_TYPE": "vault",
            "OPENAI_KEY_ROTATION_STRATEGY": "round_robin",
        }
    )
    assert settings.CONVERSATION_TTL_SECONDS == 3600
    assert settings.USER_RPM_DEFAULT == 25
    assert settings.GLOBAL_RPM_MAX == 5000
    assert settings.REDIS_TIMEOUT_SECONDS == 2.5
    assert settings.REDIS_CLUSTER is True
    assert settings.ENABLE_KEY_ROTATION is True and settings.rotation_enabled is True
    assert settings.SECRET_STORE_TYPE == "vault"
    assert settings.OPENAI_KEY_ROTATION_STRATEGY == "round_robin"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("on", True), ("false", False), ("0", False), ("no", False)],
)
def test_boolean_spellings(raw: str, expected: bool) -> None:
    settings = Settings.from_env({"LLM_MULTI_KEY_ROUTER_ENABLED": raw})
    assert settings.LLM_MULTI_KEY_ROUTER_ENABLED is expected
    assert settings.rotation_enabled is expected


def test_enable_key_rotation_is_read_before_the_feature_flag() -> None:
    settings = Settings.from_env(
        {"ENABLE_KEY_ROTATION": "false", "LLM_MULTI_KEY_ROUTER_ENABLED": "true"}
    )
    assert settings.rotation_enabled is False


def test_empty_variables_count_as_unset() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "",
            "CONVERSATION_TTL_SECONDS": "",
            "SECRET_STORE_TYPE": "  ",
            "ENABLE_KEY_ROTATION": "",
            "VAULT_TOKEN": "",
        }
    )
    assert settings == Settings.from_env({})
    assert settings.uses_embedded_store


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("USER_RPM_DEFAULT", "ten", "valid integer"),
        ("GLOBAL_RPM_MAX", "0", "greater than or equal to 1"),
        ("CONVERSATION_TTL_SECONDS", "1.5", "valid integer"),
        ("SECRET_STORE_TYPE", "keychain", "'env'"),
        ("ENABLE_KEY_ROTATION", "maybe", "valid boolean"),
        ("REDIS_TIMEOUT_SECONDS", "-1", "greater than 0"),
        ("KEY_ROTATION_STRATEGY", "fastest", "'round_robin'"),
        ("REDIS_KEY_PREFIX", "a prefix", "should match pattern"),
        ("LOG_FORMAT", "xml", "'json'"),
    ],
)
def test_a_bad_value_names_the_variable(variable: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.field == variable
    assert caught.value.source == "environment"
    assert str(caught.value).startswith(f"environment, field '{variable}': ")
    assert reason in str(caught.value)


def test_a_bad_value_is_not_echoed() -> None:
    # A key pasted into the wrong variable must not reach the error message (or a log).
    pasted = keygen.openai_project_key()
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"GLOBAL_RPM_MAX": pasted})
    assert pasted not in str(caught.value) and pasted[8:20] not in str(caught.value)


def test_secrets_are_hidden_in_reprs() -> None:
    token = "hvs." + keygen.opaque_secret(24)
    master = keygen.opaque_secret(40)
    settings = Settings.from_env({"VAULT_TOKEN": token, "ROUTER_MASTER_KEY": master})
    assert settings.VAULT_TOKEN is not None
    assert settings.VAULT_TOKEN.get_secret_value() == token
    assert token not in repr(settings) and master not in repr(settings)
    assert token not in str(settings.model_dump())


def test_keyword_overrides_win_over_the_environment() -> None:
    settings = Settings.from_env({"USER_RPM_DEFAULT": "5"}, USER_RPM_DEFAULT=7, REDIS_URL="x")
    assert settings.USER_RPM_DEFAULT == 7 and settings.REDIS_URL == "x"


def test_strategy_per_provider_then_global() -> None:
    settings = Settings.from_env(
        {"KEY_ROTATION_STRATEGY": "random", "ANTHROPIC_KEY_ROTATION_STRATEGY": "least_used"}
    )
    assert settings.strategy_for("anthropic") == "least_used"
    assert settings.strategy_for("openai") == "random"
    assert Settings.from_env({}).strategy_for("gemini") is None


def test_unknown_variables_are_ignored_and_settings_are_frozen() -> None:
    settings = Settings.from_env({"SOMETHING_ELSE": "1", "PATH": "/usr/bin"})
    with pytest.raises(ValueError, match="frozen"):
        settings.GLOBAL_RPM_MAX = 1


def test_get_settings_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_RPM_DEFAULT", "42")
    get_settings.cache_clear()
    try:
        assert get_settings().USER_RPM_DEFAULT == 42
        assert get_settings() is get_settings()
    finally:
        get_settings.cache_clear()


def test_every_setting_is_documented() -> None:
    repo = Path(__file__).resolve().parents[2]
    texts = [
        p.read_text(encoding="utf-8") for p in [repo / "README.md", *(repo / "docs").glob("*.md")]
    ]
    missing = [name for name in Settings.model_fields if not any(f"`{name}`" in t for t in texts)]
    assert missing == [], f"settings without documentation in README.md or docs/: {missing}"
