"""``python -m router vkeys create|list|revoke``: in Redis directly, or through a gateway."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from router.commands.vkeys import parse_duration, spec_of
from tests.router.gateway.harness import MODEL, GatewayHarness
from tests.router.gateway.processes import run_cli

pytestmark = pytest.mark.integration
HELLO = [{"role": "user", "content": "hi"}]


def store_env(gw: GatewayHarness) -> dict[str, str]:
    """The environment that points the CLI at the gateway's store."""
    settings = gw.settings
    return {"REDIS_URL": str(settings.REDIS_URL), "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX}


async def test_create_list_revoke_in_redis(gw: GatewayHarness, tmp_path: Path) -> None:
    env = store_env(gw)
    code, out, err = await run_cli(
        [
            "vkeys",
            "create",
            "--name",
            "batch",
            "--user",
            "alice",
            "--models",
            f"{MODEL},gpt-4o",
            "--rpm",
            "30",
            "--expires-in",
            "2h",
        ],
        env,
        tmp_path,
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["key"].startswith("sk-llmr-") and "not shown again" in err
    assert created["models"] == [MODEL, "gpt-4o"] and created["rpm"] == 30
    assert created["expires_at"] - created["created_at"] == pytest.approx(7200)
    # the gateway accepts the key the CLI wrote
    answer = await gw.client(created["key"]).chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    assert answer.choices[0].message.content

    code, out, _ = await run_cli(["vkeys", "list"], env, tmp_path)
    assert code == 0 and created["id"] in out and "user=alice" in out
    assert created["key"] not in out
    code, out, _ = await run_cli(["vkeys", "list", "--json"], env, tmp_path)
    assert [k["id"] for k in json.loads(out)] == [created["id"]]

    code, out, _ = await run_cli(["vkeys", "revoke", created["id"]], env, tmp_path)
    assert code == 0 and json.loads(out)["revoked"] is True
    with pytest.raises(openai.AuthenticationError):
        await gw.client(created["key"]).chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
    code, _, err = await run_cli(["vkeys", "revoke", "vk-nope"], env, tmp_path)
    assert code == 2 and "vk-nope" in err


async def test_through_a_running_gateway(gw: GatewayHarness, tmp_path: Path) -> None:
    args = ["vkeys", "--url", gw.url, "--master-key", gw.master]
    code, out, err = await run_cli([*args, "create", "--name", "remote"], {}, tmp_path)
    assert code == 0, err
    key = json.loads(out)["key"]
    await gw.client(key).models.list()
    code, out, _ = await run_cli([*args, "list", "--json"], {}, tmp_path)
    assert code == 0 and json.loads(out)[0]["name"] == "remote"
    code, _, err = await run_cli(
        ["vkeys", "--url", gw.url, "--master-key", "wrong", "list"], {}, tmp_path
    )
    assert code == 2 and "401" in err


async def test_bad_input_and_the_embedded_store_are_refused(tmp_path: Path) -> None:
    code, _, err = await run_cli(["vkeys", "list"], {}, tmp_path)
    assert code == 2 and "REDIS_URL" in err
    code, _, err = await run_cli(
        ["vkeys", "create", "--expires-in", "soon"],
        {"REDIS_URL": "redis://127.0.0.1:9/0"},
        tmp_path,
    )
    assert code == 2 and "--expires-in" in err


def test_spec_from_arguments() -> None:
    from router.cli import build_parser

    args = build_parser().parse_args(
        [
            "vkeys",
            "create",
            "--tag",
            "tier=paid",
            "--tag",
            "team=ml",
            "--models",
            " a, b ,",
            "--tpm",
            "9",
        ]
    )
    assert spec_of(args) == {
        "name": "",
        "models": ["a", "b"],
        "tpm": 9,
        "tags": {"tier": "paid", "team": "ml"},
    }
    bad = build_parser().parse_args(["vkeys", "create", "--tag", "novalue"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        spec_of(bad)


def test_durations() -> None:
    assert parse_duration("90") == 90 and parse_duration("30m") == 1800
    assert parse_duration("12h") == 43200 and parse_duration("2d") == 172800
    for bad in ("", "x", "-5", "0"):
        with pytest.raises(ValueError, match="expires-in"):
            parse_duration(bad)
