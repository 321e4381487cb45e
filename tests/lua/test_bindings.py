"""Every script has its binding beside it, and only the bindings run scripts: no product module
outside lua/ loads a script (so none can know a position in its KEYS, ARGV or reply)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import lua

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("router", "keys", "conversation", "kernel")
#: Loading a script (the store only takes a Script a binding hands it).
LOADS = re.compile(r"\blua\.load\b|from lua import [^\n]*\bload\b")


def test_every_script_has_a_binding_that_runs_it() -> None:
    for name in lua.available():
        binding = importlib.import_module(f"lua.{name}")
        assert binding.SCRIPT is lua.load(name), name
        assert callable(binding.run), name


def test_no_product_module_outside_lua_loads_a_script() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        if LOADS.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
