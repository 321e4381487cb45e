"""RequestRouter.start loads the tokenizer tables the pool's models need, before any request."""

from __future__ import annotations

from pathlib import Path

from kernel.settings import Settings
from kernel.tokens import encoding_name_for, get_encoding, preload_encodings
from tests.router.pool import PoolKey, sim_router


def test_preload_answers_the_encodings_of_the_models() -> None:
    names = preload_encodings(["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-latest"])
    assert names == sorted({encoding_name_for(m) for m in ["gpt-4o", "claude-3-5-haiku-latest"]})
    assert all(get_encoding(name) is not None for name in names)


async def test_start_loads_the_pools_encodings(tmp_path: Path) -> None:
    get_encoding.cache_clear()
    settings = Settings.from_env({})
    keys = [PoolKey("o", provider="openai"), PoolKey("a", provider="anthropic")]
    async with sim_router(settings, tmp_path, keys) as (router, _sim):
        loaded = get_encoding.cache_info().currsize
        served = {"gpt-4o-mini", "claude-3-5-haiku-latest"}
        assert loaded == len({encoding_name_for(m) for m in served})
        answer = await router.send_one_shot("hi", "gpt-4o-mini")
    assert answer["success"]
