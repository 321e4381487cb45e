"""``-- include:`` expansion keeps of a library only the functions the script can reach
(lua/includes.py): Redis makes every ``local function`` of a script's text again on each call."""

from __future__ import annotations

import lua
from kernel.store import Store
from lua.includes import expand
from tests.helpers import local_stores

LIB = """-- lib_demo: a test library
local TAB = '\\t'
local function unused(x) return x end
local function leaf(x) return x .. TAB end
local function middle(x)
  -- a multi-line function
  return leaf(x) .. 'm'
end
local function never_called(x)
  return unused(x)
end
local function top(x) return middle(x) end
do
  local warmed = leaf('w')
end
"""


def _expanded(body: str) -> str:
    return expand(body, {"lib_demo": LIB, "part": "local part = top('p')"}.__getitem__)


def test_only_the_functions_a_script_reaches_are_kept() -> None:
    text = _expanded("-- include: lib_demo\nreturn top('x')")
    for name in ("leaf", "middle", "top"):
        assert f"local function {name}(" in text
    assert "local function unused(" not in text
    assert "local function never_called(" not in text
    # everything but functions is kept: constants, comments, do blocks
    assert "local TAB = '\\t'" in text and "local warmed = leaf('w')" in text
    assert text.endswith("-- include: lib_demo\nreturn top('x')")


def test_a_function_used_only_by_a_library_block_or_an_included_script_is_kept() -> None:
    assert "local function leaf(" in _expanded("-- include: lib_demo\nreturn 1")
    text = _expanded("-- include: lib_demo\n-- include: part\nreturn part")
    assert "local function top(" in text and "local function middle(" in text
    assert "local part = top('p')" in text  # a non-library include stays whole


def test_the_pool_scripts_leave_out_what_they_never_call() -> None:
    assert "local function give_back(" in lua.load("settle").source
    assert "local function give_back(" in lua.load("release").source
    reserve = lua.load("reserve").source
    assert "local function give_back(" not in reserve
    assert "local function write_usage(" not in reserve
    assert "local function check_budgets(" in reserve


#: Calls limits_at, which calls gcra_at (and window_at, for a strict window): kept with it.
LIMITS_AT = """-- include: lib_pool
local L = merge_limits({c = {rpm = 60, tpm = 0, rpd = 0, br = 1, bt = 0, itpm = 0, otpm = 0,
  bi = 0, bo = 0, learn = false}, strict = false})
local S = {tat_r = 100, tat_t = 0, tat_i = 0, tat_o = 0, blocked = 0, day_req = 0}
local at, why = limits_at(L, S, nil, 1, 0)
return {at, why}
"""


@local_stores
async def test_a_kept_function_runs_with_everything_it_calls(store: Store) -> None:
    script = lua.inline("includes_demo", LIMITS_AT)
    assert "local function gcra_at(" in script.source
    assert "local function give_back(" not in script.source
    assert await store.run(script, [], []) == [100, "rpm"]
