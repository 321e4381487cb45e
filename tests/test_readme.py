"""The README stays true: its Redis key table matches the code, its commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from kernel.redis_keys import describe

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_redis_key_pattern_is_in_the_readme_table() -> None:
    rows = set(re.findall(r"^\| `([^`]+)` \| (\w+) \|", README, re.MULTILINE))
    expected = {(pattern, kind) for pattern, kind, _ in describe()}
    assert expected <= rows, f"missing from README: {sorted(expected - rows)}"


def test_the_two_setup_commands_are_there_and_ci_runs_the_test_command() -> None:
    assert "python3 -m pip install '.[demo]' && python3 -m router demo" in README
    assert "\n./tests/run.sh\n" in README
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "tests/run.sh" in ci


def test_every_documented_command_parses() -> None:
    commands = set(re.findall(r"`python -m router ([a-z-]+)", README))
    assert {"serve", "demo", "simulate-providers", "secrets", "scan-secrets"} <= commands
    for command in sorted(commands):
        result = subprocess.run(
            [sys.executable, "-m", "router", command, "--help"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert result.returncode == 0, (
            f"python -m router {command} --help failed: {result.stderr[-500:]}"
        )
