"""``python -m router demo`` end to end, as a newcomer runs it: a short run in a subprocess.

The demo starts the provider simulator and the gateway as child processes, drives traffic through
the official OpenAI SDK and prints a summary. The test runs it for a few seconds in an environment
that holds a real-looking provider key and an unreachable REDIS_URL (neither may reach the demo's
gateway), then checks the summary's books balance, no provider answered a 429 for a limit, the
pool is exactly the sample pool, and both children are gone afterwards.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from router.demo.pool import demo_pool
from tests.keygen import openai_project_key

ROOT = Path(__file__).resolve().parents[2]


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.integration
def test_demo_runs_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    canary = openai_project_key()
    env = {
        **os.environ,
        "OPENAI_API_KEY": canary,  # the person's own key: must never join the demo's pool
        "REDIS_URL": "redis://127.0.0.1:1/0",  # unreachable: the demo uses the embedded store
        "COLUMNS": "120",
    }
    done = subprocess.run(
        [sys.executable, "-m", "router", "demo", "--seconds", "5", "--json", str(summary_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = json.loads(summary_path.read_text())

    assert summary["sent"] > 0 and summary["served"] > 0
    answered = summary["served"] + summary["refused"] + sum(summary["errors"].values())
    assert answered == summary["sent"]
    assert summary["provider_429s"] == 0
    assert set(summary["keys"]) == {k.key_id for k in demo_pool().keys}
    admitted = sum(p["admitted"] for p in summary["providers"].values())
    assert admitted >= summary["served"]  # every answer served was admitted by a provider
    assert all(p["max_60s"] <= p["rpm"] for p in summary["providers"].values())

    assert "summary" in done.stdout and "429s from the providers" in done.stdout
    assert canary not in output
    urls = re.findall(r"http://127\.0\.0\.1:\d+", done.stdout)
    assert len(urls) >= 2  # the simulator's and the gateway's addresses were shown
    assert not any(_listening(url) for url in urls)


def test_demo_rejects_a_bad_duration() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "router", "demo", "--seconds", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "--seconds" in done.stderr
