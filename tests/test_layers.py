"""The package layers at run time (``lint-imports`` checks them statically, see pyproject.toml).

``keys``, ``conversation`` and ``kernel`` import in a fresh interpreter without loading ``router``;
``router`` imports its exports directly (no lazy ``__getattr__``); and the modules that moved to
``kernel`` still import from their old ``router.*`` paths, with the very same objects.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIMS = ("errors", "settings", "store", "log", "masking", "tokens", "jsonio", "redis_keys")

LOADED = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def loaded_by(module: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", LOADED, module],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(ast.literal_eval(result.stdout))


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("kernel.store", {"kernel", "lua"}),
        ("kernel.redis_check", {"kernel", "lua"}),
        ("keys.manager", {"keys", "kernel", "lua"}),
        ("conversation.store", {"conversation", "kernel", "lua"}),
        ("router", {"router", "keys", "conversation", "kernel", "lua"}),
    ],
)
def test_a_fresh_interpreter_loads_only_the_layers_below(module: str, allowed: set[str]) -> None:
    ours = loaded_by(module) & {"router", "keys", "conversation", "kernel", "lua"}
    assert ours == allowed


def test_router_exports_its_api_directly() -> None:
    router = importlib.import_module("router")
    assert not hasattr(router, "__getattr__")
    assert set(router.__all__) <= set(vars(router))


def public_definitions(path: Path) -> list[str]:
    """Names a module defines at top level (classes, functions, constants), not its logger."""
    names: list[str] = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [name for name in names if not name.startswith("_") and name != "log"]


@pytest.mark.parametrize("name", SHIMS)
def test_the_old_router_paths_re_export_the_kernel(name: str) -> None:
    kernel_module = importlib.import_module(f"kernel.{name}")
    shim = importlib.import_module(f"router.{name}")
    names = public_definitions(REPO / "kernel" / f"{name}.py")
    assert names
    for member in names:
        assert getattr(shim, member) is getattr(kernel_module, member), f"router.{name}.{member}"
