"""Budgets and cost through the gateway, with the official openai SDK as the client.

A virtual key's own budget (admin API, ``vkeys create --budget``) and a user's budget set over the
admin API hold in every worker: once spent, 429 ``budget_exceeded`` with Retry-After; each answer
says its cost in ``x-router-cost-usd``.
"""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from kernel.prices import default_table
from lua.usage_records import NANOS
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL, GatewayHarness, chat_body
from tests.router.gateway.test_cli_vkeys import run_cli, store_env

HELLO = [{"role": "user", "content": "Hello!"}]


def _worst(max_tokens: int = 16) -> int:
    estimate = default_table().worst_case_nanos(MODEL, 12, max_tokens)
    assert estimate is not None
    return estimate


async def _spend_until_refused(
    client: openai.AsyncOpenAI, calls: int = 60
) -> tuple[int, Exception]:
    for i in range(calls):
        try:
            await client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=16)  # type: ignore[arg-type]
        except openai.RateLimitError as exc:
            return i, exc
    raise AssertionError(f"{calls} calls and no refusal")


async def test_each_answer_says_its_cost(gw: GatewayHarness) -> None:
    secret = await gw.vkey(name="cost")
    status, body, headers = await gw.request(
        "POST", "/v1/chat/completions", token=secret, body=chat_body(max_tokens=16)
    )
    assert status == 200, body
    usage = body["usage"]
    cost = default_table().cost(MODEL, usage["prompt_tokens"], usage["completion_tokens"])
    assert cost is not None
    assert float(headers["x-router-cost-usd"]) == pytest.approx(cost.usd, abs=1e-9)


async def test_a_virtual_keys_budget_refuses_with_429_budget_exceeded(gw: GatewayHarness) -> None:
    status, created = await gw.admin(
        "POST",
        "/vkeys",
        {"name": "capped", "budget_usd": 3 * _worst() / NANOS, "budget_period": "day"},
    )
    assert status == 201, created
    created = created["data"]
    client = gw.client(created["key"])
    served, refused = await _spend_until_refused(client)
    assert served >= 3
    assert isinstance(refused, openai.RateLimitError)
    assert refused.code == "budget_exceeded"
    retry_after = float(refused.response.headers["retry-after"])
    assert 0 < retry_after <= 86400
    # another key is not affected
    other = gw.client(await gw.vkey(name="free"))
    answer = await other.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=16)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    status, budgets = await gw.admin("GET", "/budgets")
    assert status == 200
    mine = [b for b in budgets["data"] if b["id"] == created["id"]]
    assert mine and mine[0]["reserved_usd"] == 0 and mine[0]["spent_usd"] > 0


async def test_a_users_budget_set_over_the_admin_api_holds_in_another_worker(
    make_gateway: GatewayFactory,
) -> None:
    first = await make_gateway()
    status, body = await first.admin(
        "PUT", "/budgets/user/alice", {"limit_usd": 2 * _worst() / NANOS, "period": "month"}
    )
    assert status == 200, body
    secret = await first.vkey(name="alice's", user_id="alice")
    # a second worker on the same Redis: the budget is in the store, not in a process
    second = first.build_gateway()
    assert second.router is not first.gateway.router
    served, refused = await _spend_until_refused(first.client(secret))
    assert served >= 2 and isinstance(refused, openai.RateLimitError)
    await second.router.start()
    try:
        answer = await second.router.complete(HELLO, MODEL, max_tokens=16, user="alice")
        assert answer["error_type"] == "budget_exceeded"
    finally:
        await second.router.close()


async def test_vkeys_create_with_a_budget_and_a_team(gw: GatewayHarness, tmp_path: Path) -> None:
    code, out, err = await run_cli(
        [
            "vkeys",
            "create",
            "--name",
            "ml-batch",
            "--team",
            "ml",
            "--budget",
            "0.5",
            "--budget-period",
            "day",
            "--budget-timezone",
            "Europe/Paris",
        ],
        store_env(gw),
        tmp_path,
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["team"] == "ml"
    status, budgets = await gw.admin("GET", "/budgets")
    assert status == 200
    mine = [b for b in budgets["data"] if b["id"] == created["id"]]
    assert mine and mine[0]["limit_usd"] == 0.5 and mine[0]["timezone"] == "Europe/Paris"
    code, _, err = await run_cli(
        ["vkeys", "create", "--budget", "1", "--budget-timezone", "Mars/Olympus"],
        store_env(gw),
        tmp_path,
    )
    assert code == 2 and "budget_timezone" in err
