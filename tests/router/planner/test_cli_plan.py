"""``python -m router plan``: the table, JSON, the plot, --keys, and errors naming the option."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from router.cli import main

QUICK = ["--duration", "120", "--warmup", "30"]


def test_table_prints_the_formula_and_the_simulated_need(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["plan", "--model", "gpt-4o-mini", "--peak-rpm", "100", "--key-rpm", "10", *QUICK])
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "document 004's formula: keys_needed = peak / key limit x 1.5 = 10.00 x 1.5 -> 15 keys"
        in out
    )
    needed = int(re.search(r"simulation: (\d+) keys needed", out)[1])  # type: ignore[index]
    rows = {
        int(r[0]): r for r in (line.split() for line in out.splitlines()) if r and r[0].isdigit()
    }
    assert list(rows) == list(range(9, needed + 2))  # one below the bare need .. one past enough
    assert rows[needed][-1] == "enough" and float(rows[needed][1].rstrip("%")) >= 99
    assert all(float(rows[n][1].rstrip("%")) < 99 for n in rows if n < needed)


def test_json_has_one_row_per_pool_size(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--model", "m", "--peak-rpm", "600", "--key-rpm", "1000", "--key-tpm", "40000"]
    code = main([*argv, "--tokens-per-request", "800", "--format", "json", *QUICK])
    (plan,) = json.loads(capsys.readouterr().out)
    assert code == 0
    assert plan["formula_keys"] == 18 and plan["load_over_one_key"] == 12
    assert plan["simulated_keys"] == plan["rows"][-2]["keys"]
    assert {"goodput", "wait_p50_s", "wait_p95_s", "rate_limited", "provider_429"} <= set(
        plan["rows"][0]
    )
    assert plan["rows"][-2]["goodput"] >= 0.99 > plan["rows"][0]["goodput"]


def test_out_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "plan.png"
    argv = ["plan", "--model", "m", "--peak-rpm", "100", "--key-rpm", "10", "--out", str(path)]
    assert main([*argv, *QUICK]) == 0
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000
    assert f"plot written to {path}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--model", "m", "--peak-rpm", "0", "--key-rpm", "10"],
            "--peak-rpm must be a positive number",
        ),
        (
            ["--model", "m", "--peak-rpm", "10", "--key-rpm", "-1"],
            "--key-rpm must be a positive number",
        ),
        (["--model", "m", "--peak-rpm", "10"], "--key-rpm or --key-tpm is required without --keys"),
        (["--peak-rpm", "10", "--key-rpm", "5"], "--model is required without --keys"),
        (
            ["--model", "m", "--peak-rpm", "10", "--key-rpm", "5", "--burst", "7"],
            "--burst x --burst-seconds",
        ),
        (
            ["--model", "m", "--peak-rpm", "10", "--key-rpm", "5", "--target", "1.5"],
            "--target must be in",
        ),
    ],
)
def test_bad_input_names_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", *argv]) == 2
    assert message in capsys.readouterr().err


def _keys_file(tmp_path: Path) -> Path:
    def key(key_id: str, model: str, rpm: int, **extra: object) -> dict[str, object]:
        return {"key_id": key_id, "provider": "openai", "model_name": model, "rpm": rpm, **extra}

    path = tmp_path / "keys.json"
    keys = [
        key("a1", "gpt-4o-mini", 10),
        key("a2", "gpt-4o-mini", 10),
        key("b1", "gpt-4o", 60, quota_group="proj"),
        key("b2", "gpt-4o", 60, quota_group="proj"),  # the same project: one budget
        key("c1", "gpt-4.1", 60, active=False),
    ]
    path.write_text(json.dumps({"keys": keys}))
    return path


def test_keys_mode_says_which_model_needs_more_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _keys_file(tmp_path)
    argv = ["plan", "--keys", str(path), "--peak-rpm", "30", "--format", "json", *QUICK]
    assert main(argv) == 0
    plans = {p["model"]: p for p in json.loads(capsys.readouterr().out)}
    assert set(plans) == {"gpt-4o-mini", "gpt-4o"}  # the inactive key's model is not planned
    mini, big = plans["gpt-4o-mini"], plans["gpt-4o"]
    assert mini["configured_keys"] == 2 and mini["simulated_keys"] >= 3  # 30 / 10 rpm
    assert mini["keys_to_add"] == mini["simulated_keys"] - 2 >= 1
    assert big["configured_keys"] == 1 and big["simulated_keys"] == 1 and big["keys_to_add"] == 0


def test_keys_mode_table_and_one_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _keys_file(tmp_path)
    assert (
        main(["--keys", str(path), "plan", "--model", "gpt-4o-mini", "--peak-rpm", "30", *QUICK])
        == 0
    )
    out = capsys.readouterr().out
    assert "model gpt-4o-mini" in out and "model gpt-4o:" not in out
    assert "; configured: 2 -> add " in out
    summary = out.splitlines()[-1]
    assert summary.startswith("needs more keys: gpt-4o-mini (+") and "gpt-4o " not in summary


def test_keys_mode_unknown_model_names_the_file_and_its_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _keys_file(tmp_path)
    assert main(["plan", "--keys", str(path), "--model", "gpt-5", "--peak-rpm", "30"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "--model 'gpt-5' is not served by any active key" in err
    assert "gpt-4o-mini" in err


def test_without_matplotlib_it_says_so_and_still_prints_the_table(tmp_path: Path) -> None:
    # a real interpreter in which matplotlib cannot be imported
    path = tmp_path / "plan.png"
    argv = ["plan", "--model", "m", "--peak-rpm", "100", "--key-rpm", "10", "--out", str(path)]
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from router.cli import main\n"
        f"raise SystemExit(main({[*argv, *QUICK]!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "matplotlib is not installed: no plot written" in result.stderr
    assert "pip install 'llm-keypool-router[plan]'" in result.stderr
    assert "simulation: " in result.stdout and "<- enough" in result.stdout
    assert not path.exists()
