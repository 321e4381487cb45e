"""Keys discovered from store listings (keys.json ``sources``), kept in step by refresh."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.errors import ConfigError
from kernel.settings import Settings
from keys.discovery import (
    KeyDiscovery,
    SecretSource,
    discovered_key_id,
    load_sources,
    parse_sources,
)
from keys.secret_store import (
    SecretChanges,
    check_secret_access,
    create_secret_store,
)
from tests.keys.secret_store import canaries
from tests.keys.secret_store.conftest import infisical_settings
from tests.keys.secret_store.infisical_fake import InfisicalFake


def source(**fields: object) -> SecretSource:
    return SecretSource.model_validate({"path": "/openai-keys", "provider": "openai", **fields})


def test_key_ids_are_stable_and_distinct() -> None:
    plain = source()
    assert discovered_key_id(plain, "KEY_1") == "openai-keys.KEY_1"
    assert discovered_key_id(plain, "KEY_1") == discovered_key_id(source(), "KEY_1")
    nested = source(path="/teams/a/openai")
    assert discovered_key_id(nested, "KEY_1") == "teams.a.openai.KEY_1"
    assert discovered_key_id(source(id_prefix="oa"), "KEY_2") == "oa.KEY_2"
    # Lossy names get a hash so that two different secrets never share an id.
    lossy_a = discovered_key_id(plain, "key one")
    lossy_b = discovered_key_id(plain, "key_one")
    assert lossy_a != lossy_b and lossy_a.startswith("openai-keys.key_one-")
    dotted = discovered_key_id(source(path="/a.b"), "K")
    assert dotted != discovered_key_id(source(path="/a/b"), "K")
    assert len(discovered_key_id(plain, "X" * 300)) <= 128


def test_sources_in_keys_json_are_validated(tmp_path: Path) -> None:
    good = {
        "sources": [
            {
                "store": "infisical",
                "path": "/openai-keys",
                "provider": "openai",
                "models": ["gpt-4o"],
                "rpm": 500,
                "tpm": 200000,
            }
        ]
    }
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(good))
    (loaded,) = load_sources(path)
    assert (loaded.store, loaded.path, loaded.rpm, loaded.models) == (
        "infisical",
        "/openai-keys",
        500,
        ["gpt-4o"],
    )
    assert parse_sources({"keys": []}, source="x") == []
    with pytest.raises(ConfigError) as bad:
        parse_sources({"sources": [{"path": "/p", "provider": "mistral"}]}, source="keys.json")
    assert (
        "keys.json" in str(bad.value)
        and "sources #0" in str(bad.value)
        and "provider" in str(bad.value)
    )
    with pytest.raises(ConfigError, match="unknown field"):
        parse_sources({"sources": [{"path": "/p", "provider": "openai", "rmp": 1}]}, source="k")
    with pytest.raises(ConfigError, match="must be a list"):
        parse_sources({"sources": {"path": "/p"}}, source="k")


async def test_discovery_follows_the_folder_across_refreshes(infisical: InfisicalFake) -> None:
    k1, k2, k2b, k3 = (canaries.openai_key() for _ in range(4))
    infisical.put("/openai-keys", "KEY_1", k1)
    infisical.put("/openai-keys", "KEY_2", k2)
    infisical.put("/openai-keys", "README", "not a key at all, skipped by 'match'")
    store = create_secret_store(infisical_settings(infisical))
    discovery = KeyDiscovery(
        store,
        [
            source(
                store="infisical",
                match="KEY_*",
                models=["gpt-4o", "gpt-4o-mini"],
                rpm=500,
                tpm=200000,
            )
        ],
    )
    try:
        keys = {k.key_id: k for k in await discovery.discover()}
        assert set(keys) == {"openai-keys.KEY_1", "openai-keys.KEY_2"}
        first = keys["openai-keys.KEY_1"]
        assert (first.provider, first.model_name, first.rpm, first.tpm) == (
            "openai",
            "gpt-4o",
            500,
            200000,
        )
        assert [b.model for b in first.bindings] == ["gpt-4o", "gpt-4o-mini"]
        assert first.secret_ref == "/openai-keys/KEY_1"
        assert await store.get_secret(first) == k1
        reads_before = sum(1 for p in infisical.calls if p.startswith("/api/v3/secrets/raw/"))
        assert reads_before == 0  # the listing filled the cache

        infisical.delete("/openai-keys", "KEY_1")
        infisical.put("/openai-keys", "KEY_2", k2b)
        infisical.put("/openai-keys", "KEY_3", k3)
        updates = []
        store.subscribe(lambda changes: updates.append(discovery.apply(changes)))
        await store.refresh()
        (update,) = updates
        assert [k.key_id for k in update.add] == ["openai-keys.KEY_3"]
        assert update.remove == ["openai-keys.KEY_1"]
        assert update.changed == ["openai-keys.KEY_2"]
        assert {k.key_id for k in discovery.discovered_keys()} == {
            "openai-keys.KEY_2",
            "openai-keys.KEY_3",
        }
        assert await store.get_secret(update.add[0]) == k3
        assert await store.get_secret(keys["openai-keys.KEY_2"]) == k2b

        # A refresh that fails keeps the discovered keys.
        infisical.outage = True
        assert not await store.refresh()
        assert {k.key_id for k in discovery.discovered_keys()} == {
            "openai-keys.KEY_2",
            "openai-keys.KEY_3",
        }
        assert discovery.apply(SecretChanges(added=frozenset({"not-ours"}))).add == []
    finally:
        await store.close()


def test_a_source_for_another_store_is_refused() -> None:
    store = create_secret_store(Settings.from_env({}))
    with pytest.raises(ConfigError) as caught:
        KeyDiscovery(store, [source(store="vault")])
    assert "SECRET_STORE_TYPE" in str(caught.value) and "sources #0" in str(caught.value)


async def test_env_listing_discovers_numbered_variables() -> None:
    one, two = canaries.gemini_key(), canaries.gemini_key()
    store = create_secret_store(Settings.from_env({}), {"GEMINI_KEY_1": one, "GEMINI_KEY_2": two})
    discovery = KeyDiscovery(
        store, [source(path="GEMINI_KEY_", provider="gemini", id_prefix="gemini")]
    )
    keys = await discovery.discover()
    assert sorted(k.key_id for k in keys) == ["gemini.1", "gemini.2"]
    assert sorted([await store.get_secret(k) for k in keys]) == sorted([one, two])


async def test_test_secret_access_knows_discovered_keys(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"gemini-keys": {"KEY_1": canaries.gemini_key()}}))
    secrets_file.chmod(0o600)
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(
        json.dumps({"keys": [], "sources": [{"path": "/gemini-keys", "provider": "gemini"}]})
    )
    settings = Settings.from_env({}, SECRET_STORE_TYPE="file", SECRETS_FILE=str(secrets_file))
    answer = await check_secret_access(
        "gemini-keys.KEY_1", keys_path=keys_file, settings=settings, environ={}
    )
    assert answer["configured"] is True and answer["status"] == "found"
    assert answer["location"] == "/gemini-keys/KEY_1"
    assert canaries.leaked_in(json.dumps(answer)) == []
