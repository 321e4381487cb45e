"""Running the simulator outside the test's loop: in a thread, in a process, from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from kernel.errors import ConfigError
from router.simulator import (
    FaultConfig,
    SimKey,
    SimulatorConfig,
    SimulatorProcess,
    load_config,
    run_in_thread,
)
from tests.router.simulator.conftest import SECRET

pytestmark = pytest.mark.integration
HELLO = [{"role": "user", "content": "hello"}]


def test_thread_serves_synchronous_clients() -> None:
    config = SimulatorConfig(keys=[SimKey(key_id="k1", secret=SECRET, rpm=10)])
    with run_in_thread(config) as sim:
        client = openai.OpenAI(api_key=SECRET, base_url=sim.base_url_for("openai"), max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        assert answer.usage is not None and answer.usage.completion_tokens == 24
        sim.set_faults(FaultConfig(error_rate=1.0))
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        assert sim.stats()["keys"]["k1"]["gpt-4o"]["admitted_requests"] == 1
        client.close()


def test_process_from_config_and_admin_over_http() -> None:
    config = SimulatorConfig(keys=[SimKey(key_id="k1", secret=SECRET, rpm=1)], seed=3)
    with SimulatorProcess(config) as sim:
        client = openai.OpenAI(api_key=SECRET, base_url=sim.base_url_for("openai"), max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        stats = sim.stats()["keys"]["k1"]["gpt-4o"]
        assert stats["admitted_requests"] == 1 and stats["rate_limited"] == 1
        sim.reset_stats(limits=True)
        client.chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        client.close()


def test_cli_reports_a_bad_config_file_by_name(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"keys": [{"secret": SECRET, "rpm": 0}]}))
    result = subprocess.run(
        [sys.executable, "-m", "router", "simulate-providers", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert str(path) in result.stderr and "keys.0.rpm" in result.stderr


def test_load_config_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"sim\.json: not valid JSON"):
        load_config(path)
    path.write_text(json.dumps({"faults": {"error_rate": 3}}))
    with pytest.raises(ConfigError, match=r"field 'faults.error_rate'"):
        load_config(path)
    path.write_text(json.dumps({"keys": [{"secret": SECRET}, {"secret": SECRET}]}))
    with pytest.raises(ConfigError, match="same secret"):
        load_config(path)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.json")
    path.write_text(json.dumps({"keys": [{"key_id": "a", "secret": SECRET, "tpm": 5}], "seed": 4}))
    assert load_config(path).keys[0].tpm == 5


def test_sim_key_repr_hides_the_secret() -> None:
    key = SimKey(secret=SECRET)
    assert SECRET not in repr(key) and key.key_id.startswith("key-")
