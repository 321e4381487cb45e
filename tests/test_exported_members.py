"""The public surface (httpx's tests/test_exported_members.py idea).

Every package that declares ``__all__`` exports exactly what it declares, each name resolves and
comes from the package itself; the names the source documents give are
importable; and the exception tree drawn in kernel/errors.py's docstring is the real hierarchy.
Packages are found on disk, so a new package with an ``__all__`` is guarded without editing this.
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from pathlib import Path
from types import ModuleType

import pytest

import kernel.errors

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("router", "keys", "conversation", "kernel", "lua")


def packages() -> list[str]:
    found = []
    for top in TOP_LEVEL:
        for init in sorted((REPO / top).rglob("__init__.py")):
            parts = init.parent.relative_to(REPO).parts
            if "__pycache__" not in parts:
                found.append(".".join(parts))
    return found


def with_all() -> list[str]:
    return [name for name in packages() if hasattr(importlib.import_module(name), "__all__")]


def namespace_exports(module: ModuleType) -> set[str]:
    """Public names the package binds that must be declared: its own classes, functions and
    values. Submodules, typing helpers (``Any``, ``TYPE_CHECKING``) and what an ``__init__``
    imports from elsewhere for its own code (``Mapping``, ``Settings``) are not exports."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        if type(value).__module__ == "__future__" or value is getattr(typing, name, object()):
            continue
        origin = getattr(value, "__module__", None)
        if (inspect.isclass(value) or inspect.isfunction(value)) and not (
            origin == module.__name__ or str(origin).startswith(module.__name__ + ".")
        ):
            continue
        names.add(name)
    return names


def test_the_packages_with_all_are_found() -> None:
    found = with_all()
    assert {"router", "conversation"} <= set(found)


@pytest.mark.parametrize("name", with_all())
def test_all_matches_what_the_package_exports(name: str) -> None:
    module = importlib.import_module(name)
    declared = list(module.__all__)
    assert len(declared) == len(set(declared)), f"{name}.__all__ lists a name twice"
    assert declared == sorted(declared), f"{name}.__all__ is not sorted"
    bound = namespace_exports(module)
    assert not hasattr(module, "__getattr__"), f"{name} has lazy exports (a module __getattr__)"
    assert bound == set(declared), (
        f"{name}: exported but not in __all__: {sorted(bound - set(declared))}; "
        f"in __all__ but not exported: {sorted(set(declared) - bound)}"
    )


@pytest.mark.parametrize("name", with_all())
def test_every_declared_name_resolves_to_this_projects_code(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        value = getattr(module, member)
        origin = getattr(value, "__module__", None)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert origin is not None and origin.split(".")[0] in TOP_LEVEL, (
                f"{name}.{member} comes from {origin}, not from this project"
            )


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("router", ["Answer", "RequestRouter", "StreamEvent", "get_request_router"]),
        ("keys.manager", ["KeyManager", "get_key_manager"]),
        ("keys.models", ["APIKey"]),
        ("conversation.store", ["ConversationStore", "get_conversation_store"]),
        ("kernel.errors", ["AllKeysExhaustedError", "SecretStoreError", "ConfigError"]),
        ("keys.secret_store", ["test_secret_access"]),
    ],
)
def test_the_names_of_the_source_documents_import(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)
    for name in names:
        assert getattr(imported, name) is not None, f"from {module} import {name}"


# -- the exception tree ---------------------------------------------------------------------------


def drawn_tree() -> dict[str, str | None]:
    """class name -> parent name, as drawn in kernel/errors.py's docstring."""
    doc = kernel.errors.__doc__ or ""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^(\s*)(?:[│ ]*[├└]── )?([A-Z]\w+Error)\b", line)
        if not match:
            continue
        depth = len(line) - len(line.lstrip(" │├└─"))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match.group(2)] = stack[-1][1] if stack else None
        stack.append((depth, match.group(2)))
    return parents


def defined_errors() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(kernel.errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == "kernel.errors"
    }


def test_every_error_class_is_drawn_in_the_tree_and_nothing_else() -> None:
    assert set(drawn_tree()) == set(defined_errors())


def test_the_drawn_tree_is_the_real_hierarchy() -> None:
    classes = defined_errors()
    for name, parent in drawn_tree().items():
        base = classes[name].__bases__[0]
        if parent is None:
            assert name == "RouterError" and base is Exception
        else:
            assert base is classes[parent], (
                f"{name} derives from {base.__name__}, drawn under {parent}"
            )


def test_every_error_has_its_own_error_type_answer() -> None:
    for name, cls in defined_errors().items():
        assert isinstance(cls.error_type, str) and cls.error_type, name  # type: ignore[attr-defined]
