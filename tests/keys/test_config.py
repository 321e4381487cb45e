"""Key configuration: every source (keys.json, provider variables, per-id secrets), their precedence
and the errors a malformed keys.json gives. The rules are those of keys/config.py's docstring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import ConfigError
from keys.config import (
    env_secret_for,
    env_secret_names,
    fingerprint,
    load_key_config,
    load_keys_file,
    read_keys_file,
)
from keys.discovery import SecretSource
from keys.models import key_serves
from tests import keygen

REPO = Path(__file__).resolve().parents[2]
PROVIDER_KEYS = {
    "openai": keygen.openai_project_key,
    "anthropic": keygen.anthropic_key,
    "gemini": keygen.gemini_key,
}
PREFIX = {"openai": "OPENAI", "anthropic": "ANTHROPIC", "gemini": "GEMINI"}


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def key_entry(key_id: str, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key_id": key_id,
        "model_name": "gemini-2.5-flash",
        "provider": "gemini",
        "rpm": 60,
        "tpm": 1_000_000,
    }
    entry.update(fields)
    return entry


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, with no keys.json in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- zero configuration and the provider variables ------------------------------------------------


def test_no_configuration_gives_an_empty_pool(empty_dir: Path) -> None:
    config = load_key_config(environ={})
    assert config.keys == []
    assert config.path is None
    assert config.sources == []
    assert config.routing == {}


def test_one_openai_key_in_the_environment_is_a_whole_pool(empty_dir: Path) -> None:
    secret = keygen.openai_project_key()
    config = load_key_config(environ={"OPENAI_API_KEY": secret})
    (key,) = config.keys
    assert key.provider == "openai"
    assert key.key_id == f"openai-{fingerprint(secret)}"
    assert key.secret_ref == "env:OPENAI_API_KEY"
    assert config.origins == {key.key_id: "env:OPENAI_API_KEY"}
    assert env_secret_for(key, {"OPENAI_API_KEY": secret}) == (secret, "OPENAI_API_KEY")
    # it serves every OpenAI model, known or not, but never another provider's
    assert key_serves(key, "gpt-4o") is not None
    assert key_serves(key, "my-finetune") is not None
    assert key_serves(key, "claude-3-opus") is None
    assert secret not in repr(config)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_comma_list_numbered_and_single_are_all_used_and_a_secret_counts_once(
    empty_dir: Path, provider: str
) -> None:
    a, b, c, d, e = (PROVIDER_KEYS[provider]() for _ in range(5))
    p = PREFIX[provider]
    env = {
        f"{p}_API_KEYS": f"{a}, {b},,{c} ",
        f"{p}_API_KEY_2": d,
        f"{p}_API_KEY_10": e,
        f"{p}_API_KEY_1": b,  # already in the list
        f"{p}_API_KEY": a,  # already in the list
    }
    config = load_key_config(environ=env)
    assert [k.provider for k in config.keys] == [provider] * 5
    secrets_in_order = [env_secret_for(k, env)[0] for k in config.keys]
    # the list first, then numbered in numeric order (2 before 10), then the single key
    assert secrets_in_order == [a, b, c, d, e]
    assert [config.origins[k.key_id] for k in config.keys] == [
        f"env:{p}_API_KEYS",
        f"env:{p}_API_KEYS",
        f"env:{p}_API_KEYS",
        f"env:{p}_API_KEY_2",
        f"env:{p}_API_KEY_10",
    ]
    assert len({k.key_id for k in config.keys}) == 5


def test_empty_variables_define_no_keys(empty_dir: Path) -> None:
    env = {"OPENAI_API_KEY": "", "OPENAI_API_KEYS": " , ", "ANTHROPIC_API_KEY_1": "  "}
    assert load_key_config(environ=env).keys == []


def test_gemini_api_key_alone_is_documents_single_key_mode(empty_dir: Path) -> None:
    secret = keygen.gemini_key()
    (key,) = load_key_config(environ={"GEMINI_API_KEY": secret}).keys
    assert key.provider == "gemini"
    assert key.model_name == "gemini-2.0-flash"
    assert key_serves(key, "gemini-2.5-pro") is not None
    assert key_serves(key, "gpt-4o") is None


def test_env_key_ids_are_stable_and_do_not_reveal_the_secret(empty_dir: Path) -> None:
    secret = keygen.anthropic_key()
    first = load_key_config(environ={"ANTHROPIC_API_KEY": secret}).keys[0]
    second = load_key_config(environ={"ANTHROPIC_API_KEY_1": secret}).keys[0]
    assert first.key_id == second.key_id
    assert secret[7:] not in first.key_id and len(first.key_id) == len("anthropic-") + 8


def test_provider_limits_endpoint_and_model_variables_apply_to_env_keys(empty_dir: Path) -> None:
    env = {
        "OPENAI_API_KEY": keygen.openai_legacy_key(),
        "OPENAI_RPM": "500",
        "OPENAI_TPM": "200000",
        "OPENAI_RPD": "10000",
        "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1/",
        "OPENAI_MODEL": "gpt-4o",
        "ANTHROPIC_API_KEY": keygen.anthropic_key(),
    }
    openai, anthropic = load_key_config(environ=env).keys
    assert (openai.rpm, openai.tpm, openai.rpd) == (500, 200_000, 10_000)
    assert openai.base_url == "http://127.0.0.1:8080/v1"
    assert openai.model_name == "gpt-4o"
    # the exact model first, then every other model of the provider at the same priority
    assert [b.model for b in openai.bindings] == ["gpt-4o", "*"]
    # variables of one provider do not leak into another's keys
    assert (anthropic.rpm, anthropic.tpm, anthropic.base_url) == (None, None, None)
    assert anthropic.model_name == "claude-3-5-haiku-latest"


def test_input_and_output_limit_variables_apply_to_env_keys(empty_dir: Path) -> None:
    env = {
        "ANTHROPIC_API_KEY": keygen.anthropic_key(),
        "ANTHROPIC_ITPM": "40000",
        "ANTHROPIC_OTPM": "8000",
    }
    (key,) = load_key_config(environ=env).keys
    assert (key.itpm, key.otpm, key.tpm, key.learn_limits) == (40_000, 8000, None, True)
    with pytest.raises(ConfigError) as info:
        load_key_config(environ={**env, "ANTHROPIC_OTPM": "lots"})
    assert "ANTHROPIC_OTPM" in str(info.value)


def test_a_keys_json_of_ids_and_providers_only_is_a_pool(empty_dir: Path) -> None:
    write_json(
        empty_dir / "keys.json",
        {
            "keys": [
                {"key_id": "o1", "provider": "openai"},
                {"key_id": "a1", "provider": "anthropic", "itpm": 40000, "otpm": 8000},
                {"key_id": "g1", "provider": "gemini", "learn_limits": False, "rpm": 15},
            ]
        },
    )
    o1, a1, g1 = load_key_config(environ={}).keys
    assert (o1.model_name, o1.rpm, o1.tpm, o1.learn_limits) == ("gpt-4o-mini", None, None, True)
    assert (a1.model_name, a1.itpm, a1.otpm) == ("claude-3-5-haiku-latest", 40_000, 8000)
    assert (g1.model_name, g1.learn_limits, g1.rpm) == ("gemini-2.0-flash", False, 15)
    assert "learn_limits" not in o1.metadata() and g1.metadata()["learn_limits"] is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OPENAI_RPM", "fast"),
        ("OPENAI_TPM", "0"),
        ("OPENAI_RPD", "-5"),
        ("OPENAI_BASE_URL", "ftp://example.invalid"),
        ("OPENAI_MODEL", "gpt 4o with spaces"),
    ],
)
def test_a_bad_provider_variable_names_itself(empty_dir: Path, variable: str, value: str) -> None:
    env = {"OPENAI_API_KEY": keygen.openai_legacy_key(), variable: value}
    with pytest.raises(ConfigError) as caught:
        load_key_config(environ=env)
    assert caught.value.field == variable
    assert variable in str(caught.value) and "environment" in str(caught.value)


# -- keys.json: where it is found -----------------------------------------------------------------


def test_keys_json_from_argument_then_key_store_path_then_working_directory(
    empty_dir: Path,
) -> None:
    write_json(empty_dir / "keys.json", {"keys": [key_entry("cwd_key")]})
    write_json(empty_dir / "env.json", {"keys": [key_entry("env_path_key")]})
    write_json(empty_dir / "arg.json", {"keys": [key_entry("arg_key")]})
    env = {"KEY_STORE_PATH": str(empty_dir / "env.json")}

    assert [k.key_id for k in load_key_config(environ={}).keys] == ["cwd_key"]
    assert [k.key_id for k in load_key_config(environ=env).keys] == ["env_path_key"]
    by_argument = load_key_config(empty_dir / "arg.json", environ=env)
    assert [k.key_id for k in by_argument.keys] == ["arg_key"]
    assert by_argument.path == empty_dir / "arg.json"
    assert by_argument.origins == {"arg_key": str(empty_dir / "arg.json")}


@pytest.mark.parametrize("how", ["argument", "KEY_STORE_PATH"])
def test_a_named_keys_json_that_does_not_exist_is_an_error(empty_dir: Path, how: str) -> None:
    missing = empty_dir / "nowhere" / "keys.json"
    with pytest.raises(ConfigError, match="file not found") as caught:
        if how == "argument":
            load_key_config(missing, environ={})
        else:
            load_key_config(environ={"KEY_STORE_PATH": str(missing)})
    assert caught.value.source == str(missing)


def test_keys_json_and_environment_merge_and_a_shared_secret_counts_once(empty_dir: Path) -> None:
    shared, extra = keygen.gemini_key(), keygen.gemini_key()
    path = write_json(empty_dir / "keys.json", {"keys": [key_entry("gemini-flash-01")]})
    env = {
        "API_KEY_GEMINI_FLASH_01": shared,  # document 004's per-id variable
        "GEMINI_API_KEYS": f"{shared},{extra}",
    }
    config = load_key_config(path, environ=env)
    assert [k.key_id for k in config.keys] == ["gemini-flash-01", f"gemini-{fingerprint(extra)}"]
    assert config.origins["gemini-flash-01"] == str(path)


def test_per_id_secret_variables_of_documents_003_and_004(empty_dir: Path) -> None:
    path = write_json(
        empty_dir / "keys.json",
        {"keys": [key_entry("flash_01"), key_entry("gemini-pro-01", model_name="gemini-2.5-pro")]},
    )
    s003, s004 = keygen.gemini_key(), keygen.gemini_key()
    env = {"GEMINI_KEY_flash_01": s003, "API_KEY_GEMINI_PRO_01": s004}
    flash, pro = load_key_config(path, environ=env).keys
    assert env_secret_for(flash, env) == (s003, "GEMINI_KEY_flash_01")
    assert env_secret_for(pro, env) == (s004, "API_KEY_GEMINI_PRO_01")


def test_per_id_variables_are_tried_in_documented_order(empty_dir: Path) -> None:
    path = write_json(
        empty_dir / "keys.json", {"keys": [key_entry("flash_01", secret_ref="MY_FLASH_SECRET")]}
    )
    (key,) = load_key_config(path, environ={}).keys
    assert env_secret_names(key) == [
        "MY_FLASH_SECRET",
        "API_KEY_FLASH_01",
        "GEMINI_KEY_flash_01",
        "GEMINI_KEY_FLASH_01",
    ]
    values = {name: keygen.gemini_key() for name in env_secret_names(key)}
    for name in env_secret_names(key):
        assert env_secret_for(key, values) == (values[name], name)
        del values[name]
    assert env_secret_for(key, values) == (None, "MY_FLASH_SECRET")


# -- single-key mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["ENABLE_KEY_ROTATION", "LLM_MULTI_KEY_ROUTER_ENABLED"])
def test_rotation_disabled_is_single_key_mode(empty_dir: Path, flag: str) -> None:
    single = keygen.gemini_key()
    write_json(empty_dir / "keys.json", {"keys": [key_entry("flash_01")]})
    env = {
        flag: "false",
        "GEMINI_API_KEY": single,
        "GEMINI_API_KEYS": f"{keygen.gemini_key()},{keygen.gemini_key()}",
        "GEMINI_API_KEY_1": keygen.gemini_key(),
        "KEY_STORE_PATH": str(empty_dir / "keys.json"),
    }
    config = load_key_config(environ=env)
    assert [env_secret_for(k, env)[0] for k in config.keys] == [single]
    assert config.path is None
    assert any("single-key mode" in w for w in config.warnings)


def test_rotation_flags_enabled_or_unset_use_every_source(empty_dir: Path) -> None:
    write_json(empty_dir / "keys.json", {"keys": [key_entry("flash_01")]})
    listed = f"{keygen.gemini_key()},{keygen.gemini_key()}"
    for flags in (
        {},
        {"ENABLE_KEY_ROTATION": "true"},
        # ENABLE_KEY_ROTATION is read first when both are set
        {"ENABLE_KEY_ROTATION": "1", "LLM_MULTI_KEY_ROUTER_ENABLED": "false"},
    ):
        config = load_key_config(environ={**flags, "GEMINI_API_KEYS": listed})
        assert len(config.keys) == 3, flags


# -- document 002's provider layout and secrets ---------------------------------------------------


def test_document_002_provider_layout_with_placeholders(empty_dir: Path) -> None:
    document = {
        "providers": {
            "gemini": {
                "keys": [
                    {
                        "api_key": f"GEMINI_KEY_{n}_PLACEHOLDER",
                        "key_id": f"gemini-key-{n}",
                        "rpm_limit": 15,
                        "priority_models": [
                            {"model": "gemini-2.0-flash", "weight": 10, "priority": 1},
                            {"model": "gemini-2.0-flash-exp", "weight": 5, "priority": 2},
                        ],
                    }
                    for n in (1, 2)
                ]
            }
        }
    }
    path = write_json(empty_dir / "key-pool-config.json", document)
    secret = keygen.gemini_key()
    env = {"GEMINI_KEY_1": secret, "GEMINI_API_KEY": secret}  # the same key twice: counted once
    config = load_key_config(path, environ=env)
    first, second = config.keys
    assert first.key_id == "gemini-key-1" and first.provider == "gemini"
    assert first.rpm == 15 and first.model_name == "gemini-2.0-flash"
    assert [(b.model, b.weight, b.priority) for b in first.bindings] == [
        ("gemini-2.0-flash", 10.0, 1),
        ("gemini-2.0-flash-exp", 5.0, 2),
    ]
    assert first.secret_ref == "env:GEMINI_KEY_1" and second.secret_ref == "env:GEMINI_KEY_2"
    assert env_secret_for(first, env) == (secret, "GEMINI_KEY_1")


@pytest.mark.parametrize(
    "make_secret",
    [
        keygen.openai_project_key,
        keygen.anthropic_key,
        keygen.gemini_key,
        keygen.aws_access_key_id,
    ],
)
@pytest.mark.parametrize("field", ["api_key", "secret", "token"])
def test_a_literal_secret_in_keys_json_is_refused_without_printing_it(
    empty_dir: Path, make_secret: Any, field: str
) -> None:
    secret = make_secret()
    path = write_json(empty_dir / "keys.json", {"keys": [key_entry("flash_01", **{field: secret})]})
    with pytest.raises(ConfigError) as caught:
        load_key_config(path, environ={})
    message = str(caught.value)
    assert str(path) in message and "'flash_01'" in message and f"'{field}'" in message
    assert "must not contain secrets" in message and "a secret" in message
    assert secret not in message and secret[-12:] not in message


def test_a_value_that_is_no_variable_name_is_refused_too(empty_dir: Path) -> None:
    path = write_json(
        empty_dir / "keys.json", {"keys": [key_entry("k1", api_key="hunter2hunter2")]}
    )
    with pytest.raises(ConfigError, match=r"holds a value; keys\.json must not contain secrets"):
        load_key_config(path, environ={})


# -- sources, routing, layouts --------------------------------------------------------------------


def test_a_keys_json_with_only_sources_loads(empty_dir: Path) -> None:
    source = {"store": "infisical", "path": "/openai-keys", "provider": "openai", "rpm": 500}
    path = write_json(empty_dir / "keys.json", {"sources": [source]})
    config = load_key_config(path, environ={})
    assert config.keys == []
    assert config.path == path
    assert config.sources == [SecretSource.model_validate(source)]


def test_keys_routing_and_sources_together(empty_dir: Path) -> None:
    document = {
        "_comment": "comments and $schema are allowed at the top level",
        "$schema": "./keys.schema.json",
        "keys": [key_entry("flash_01")],
        "routing": {"aliases": {"fast": "gemini-2.5-flash"}},
        "sources": [{"path": "/gemini-keys", "provider": "gemini"}],
    }
    result = read_keys_file(write_json(empty_dir / "keys.json", document))
    assert [k.key_id for k in result.keys] == ["flash_01"]
    assert result.routing == {"aliases": {"fast": "gemini-2.5-flash"}}
    assert [s.path for s in result.sources] == ["/gemini-keys"]
    keys, routing = load_keys_file(empty_dir / "keys.json")
    assert keys == result.keys and routing == result.routing


def test_a_bare_list_of_keys_loads(empty_dir: Path) -> None:
    path = write_json(empty_dir / "keys.json", [key_entry("a"), key_entry("b")])
    assert [k.key_id for k in load_key_config(path, environ={}).keys] == ["a", "b"]


def test_the_shipped_keys_json_example_loads() -> None:
    example = REPO / "keys.json.example"
    config = load_key_config(example, environ={})
    providers = {k.provider for k in config.keys}
    assert providers == {"openai", "anthropic", "gemini"}
    told = [k for k in config.keys if k.rpm]
    assert all(k.tpm or (k.itpm and k.otpm) for k in told)
    assert any(k.itpm and k.otpm for k in told)  # Anthropic's input and output limits
    # and one key told nothing: it runs at the limits its provider reports
    assert any(not (k.rpm or k.tpm) and k.learn_limits for k in config.keys)
    assert any(k.rpd for k in config.keys)
    assert any(k.quota_group for k in config.keys)
    assert any(len(k.bindings) > 1 for k in config.keys)
    assert all(k.tags for k in config.keys)
    assert config.routing == {}
    # metadata only: nothing in it looks like a secret
    text = example.read_text(encoding="utf-8")
    for prefix in ("sk-proj-", "sk-ant-", "AIza"):
        assert prefix not in text


# -- malformed keys.json --------------------------------------------------------------------------


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_key_config(path, environ={})
    assert str(path) in str(caught.value), "the message names the file"
    return caught.value


def test_bad_json_names_file_line_and_column(empty_dir: Path) -> None:
    path = empty_dir / "keys.json"
    path.write_text('{"keys": [\n  {"key_id": "a",}\n]}', encoding="utf-8")
    error = load_error(path)
    assert "invalid JSON at line 2 column" in str(error)


def test_a_file_that_is_not_utf8(empty_dir: Path) -> None:
    path = empty_dir / "keys.json"
    path.write_bytes(b'{"keys": [], "\xff": 1}')
    assert "not UTF-8" in str(load_error(path))


@pytest.mark.parametrize(
    ("entry", "entry_name", "field", "reason"),
    [
        (
            # (with a provider, a key with no model serves the provider's default model)
            {k: v for k, v in key_entry("k1").items() if k not in ("model_name", "provider")},
            "k1",
            "model_name",
            "required field is missing",
        ),
        (
            {k: v for k, v in key_entry("k1").items() if k != "key_id"},
            0,
            "key_id",
            "required field is missing",
        ),
        (key_entry("k1", rpm=-5), "k1", "rpm", "greater than or equal to 1"),
        (key_entry("k1", tpm=0), "k1", "tpm", "greater than or equal to 1"),
        (key_entry("k1", rmp=60), "k1", "rmp", "unknown field"),
        (key_entry("k1", rpm="fast"), "k1", "rpm", "valid integer"),
        (key_entry("k1", tags=["a", "b"]), "k1", "tags", "valid dictionary"),
        (key_entry("k1", active="maybe"), "k1", "active", "valid boolean"),
        (key_entry("k1", provider="mistral"), "k1", "provider", "'openai'"),
        (key_entry("k1", base_url="ftp://x"), "k1", "base_url", "http:// or https://"),
        (
            key_entry("k1", models=[{"model": "a", "weight": -1}]),
            "k1",
            "models.0.weight",
            "greater than 0",
        ),
        (key_entry("k1", created_at="yesterday"), "k1", "created_at", "datetime"),
        (key_entry("has space"), "has space", "key_id", "should match pattern"),
    ],
)
def test_a_bad_entry_names_file_entry_and_field(
    empty_dir: Path, entry: dict[str, Any], entry_name: str | int, field: str, reason: str
) -> None:
    path = write_json(empty_dir / "keys.json", {"keys": [key_entry("first"), entry]})
    error = load_error(path)
    expected_entry = entry_name if isinstance(entry_name, str) else 1
    assert (error.entry, error.field) == (expected_entry, field)
    assert f"field '{field}'" in str(error)
    assert reason in str(error)


def test_duplicate_key_id_names_both_entries(empty_dir: Path) -> None:
    path = write_json(
        empty_dir / "keys.json", {"keys": [key_entry("a"), key_entry("b"), key_entry("a")]}
    )
    error = load_error(path)
    assert (error.entry, error.field) == (2, "key_id")
    assert "entry #2, field 'key_id': duplicate key_id 'a' (first defined in entry #0)" in str(
        error
    )


def test_duplicate_key_id_across_provider_sections(empty_dir: Path) -> None:
    entry = {"api_key": "GEMINI_KEY_1", "key_id": "dup", "model_name": "gemini-2.0-flash"}
    document = {
        "providers": {
            "gemini": {"keys": [entry]},
            "openai": {"keys": [{**entry, "model_name": "gpt-4o"}]},
        }
    }
    error = load_error(write_json(empty_dir / "keys.json", document))
    assert "first defined in entry 'providers.gemini.keys #0'" in str(error)


def test_an_entry_without_key_id_in_provider_layout_is_named_by_its_place(
    empty_dir: Path,
) -> None:
    document = {"providers": {"anthropic": {"keys": [{"model_name": "claude-3-5-haiku-latest"}]}}}
    error = load_error(write_json(empty_dir / "keys.json", document))
    assert error.entry == "providers.anthropic.keys #0" and error.field == "key_id"


@pytest.mark.parametrize(
    ("document", "field", "reason"),
    [
        ({"keys": {"k1": {}}}, "keys", "must be a list"),
        ({"keys": [], "routing": []}, "routing", "must be an object"),
        ({"keys": [], "routng": {}}, "routng", "unknown field"),
        ({"Keys": []}, "Keys", "unknown field"),
        ({"providers": {"gemini": []}}, "providers.gemini", "expected a 'keys' list"),
        ({"providers": ["gemini"]}, "providers", "must be an object"),
        ({"sources": {"path": "/p"}}, "sources", "must be a list"),
    ],
)
def test_a_bad_section_names_the_field(
    empty_dir: Path, document: Any, field: str, reason: str
) -> None:
    error = load_error(write_json(empty_dir / "keys.json", document))
    assert error.field == field
    assert reason in str(error)


@pytest.mark.parametrize("document", [{}, "keys", 42, {"routing": {}}])
def test_a_document_without_keys_is_refused(empty_dir: Path, document: Any) -> None:
    error = load_error(write_json(empty_dir / "keys.json", document))
    assert "'keys'" in str(error)


def test_an_entry_that_is_not_an_object(empty_dir: Path) -> None:
    error = load_error(write_json(empty_dir / "keys.json", {"keys": [key_entry("a"), "b"]}))
    assert error.entry == 1 and "expected an object" in str(error)


def test_a_bad_source_names_its_entry(empty_dir: Path) -> None:
    document = {"sources": [{"path": "/p", "provider": "openai", "rmp": 1}]}
    error = load_error(write_json(empty_dir / "keys.json", document))
    assert error.entry == "sources #0" and error.field == "rmp"


def test_a_directory_instead_of_a_file(empty_dir: Path) -> None:
    (empty_dir / "keys.json").mkdir()
    assert "cannot read file" in str(load_error(empty_dir / "keys.json"))
