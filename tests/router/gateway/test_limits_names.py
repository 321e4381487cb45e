"""The limits' Redis key names are built once per (user, virtual key) and kept bounded: each user
still has a limit of its own, past the cache's size too."""

from __future__ import annotations

import pytest

from kernel.settings import Settings
from kernel.store import create_store
from router.gateway import limits as limits_module
from router.gateway.limits import RequestLimits
from tests.conftest import unique_prefix

pytestmark = pytest.mark.integration


async def test_names_are_kept_for_at_most_max_named_pairs(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits_module, "MAX_NAMED", 3)
    settings = Settings.from_env(
        {}, REDIS_URL=redis_url, REDIS_KEY_PREFIX=unique_prefix(), USER_RPM_DEFAULT=1
    )
    store = create_store(settings)
    try:
        limits = RequestLimits(store, settings)
        users = [f"user-{i}" for i in range(7)]
        for user in users:
            assert (await limits.acquire(user_id=user, vkey=None, tokens=0)).allowed
            assert len(limits._names) <= 3
        for user in reversed(users):  # each user's own limit (1/min) is used up, and no other's
            refused = await limits.acquire(user_id=user, vkey=None, tokens=0)
            assert not refused.allowed and refused.limit == "user"
        assert limits._keys("user-0", "-").encode()[:5] == [
            store.keys.rl_user("user-0"),
            store.keys.rl_global,
            store.keys.rl_vkey("-", "rpm"),
            store.keys.rl_vkey("-", "tpm"),
            store.keys.rl_vkey_revoked("-"),
        ]
        assert limits._keys("a", "-").call != limits._keys("a", "-").call  # a fresh id per call
    finally:
        await store.close()
