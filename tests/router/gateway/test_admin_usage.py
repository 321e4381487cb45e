"""The admin API's usage log and budgets, and the cost and budget metrics, over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel.store import Store
from keys.budgets import BudgetBook
from lua.usage_records import BudgetRecord, SpendRecord, budget_field, usd_to_nanos
from router.metrics import MAX_BUDGET_SERIES, BudgetCollector
from tests.helpers import both_pool_shards
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import GatewayHarness, assert_error_shape
from tests.router.gateway.processes import run_cli
from tests.router.gateway.test_ops import samples, value
from tests.router.usage_data import add_call, add_record, id_order, record

#: The same with the pool in one slot and in three shards (POOL_SHARDS).
pytestmark = [pytest.mark.integration, both_pool_shards]


def store_of(gw: GatewayHarness) -> Store:
    store: Store = gw.gateway.store
    return store


async def error_param(gw: GatewayHarness, method: str, path: str, body: Any = None) -> str:
    status, answer = await gw.admin(method, path, body)
    assert status == 400, answer
    return str(assert_error_shape(answer)["param"])


async def test_usage_summary(gw: GatewayHarness) -> None:
    store = store_of(gw)
    minute = int(await store.server_time() // 60)
    await add_call(store, minute - 3, {"model": "gpt-4o", "vkey": "vk-1"}, 100, 10, 0.5)
    await add_call(store, minute, {"model": "gpt-4o-mini"}, 20, 2, 0.01, error=True)
    status, body = await gw.admin("GET", "/usage?since=1h&by=vkey")
    assert status == 200 and body["success"] is True
    data = body["data"]
    assert data["by"] == "vkey" and data["until"] - data["since"] == pytest.approx(3600)
    assert [(r["name"], r["requests"]) for r in data["rows"]] == [("vk-1", 1), (None, 1)]
    assert data["total"] == {
        "name": "total",
        "requests": 2,
        "tokens_in": 120,
        "tokens_out": 12,
        "cost_usd": 0.51,
        "errors": 1,
    }
    status, body = await gw.admin("GET", "/usage")  # the last hour, by model
    assert status == 200 and {r["name"] for r in body["data"]["rows"]} == {"gpt-4o", "gpt-4o-mini"}
    assert await error_param(gw, "GET", "/usage?since=yesterday") == "since"
    assert await error_param(gw, "GET", "/usage?until=1e400") == "until"
    assert await error_param(gw, "GET", "/usage?by=colour") == "by"


async def test_usage_records_paged(gw: GatewayHarness) -> None:
    store = store_of(gw)
    now = await store.server_time()
    ids = [
        await add_record(store, record(now, n, user="alice" if n % 2 else "bob")) for n in range(7)
    ]
    seen, cursor = [], ""
    for _ in range(10):
        status, body = await gw.admin("GET", f"/usage/records?since=10m&limit=3&cursor={cursor}")
        assert status == 200, body
        seen += [r["id"] for r in body["data"]["records"]]
        cursor = body["data"]["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, key=id_order)  # one millisecond's records: in their slots' order
    status, body = await gw.admin("GET", "/usage/records?user=alice&limit=1000")
    alice = [f"req-{ids.index(i)}" for i in sorted(ids, key=id_order) if ids.index(i) % 2]
    assert [r["request_id"] for r in body["data"]["records"]] == alice  # req-1, req-3, req-5
    assert await error_param(gw, "GET", "/usage/records?limit=1001") == "limit"
    assert await error_param(gw, "GET", "/usage/records?limit=0") == "limit"
    assert await error_param(gw, "GET", "/usage/records?cursor=abc") == "cursor"
    assert await error_param(gw, "GET", "/usage/records?success=perhaps") == "success"


async def test_budgets_set_listed_and_deleted(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(BUDGET_ALERT_SHARE=0.9)
    body = {"limit_usd": 5, "period": "day", "timezone": "Europe/Paris", "alert_at": 0.8}
    status, answer = await gw.admin("PUT", "/budgets/user/alice", body)
    assert status == 200, answer
    alice = answer["data"]
    assert (alice["scope"], alice["id"], alice["limit_usd"], alice["period"]) == (
        "user",
        "alice",
        5,
        "day",
    )
    assert alice["timezone"] == "Europe/Paris" and alice["alert_share"] == 0.8
    assert alice["remaining_usd"] == 5 and alice["spent_usd"] == 0
    status, answer = await gw.admin("PUT", "/budgets/global", {"limit_usd": 100})
    assert status == 200 and answer["data"]["period"] == "month"
    assert answer["data"]["alert_share"] == 0.9  # BUDGET_ALERT_SHARE
    status, answer = await gw.admin("PUT", "/budgets/team/ml%20research", {"limit_usd": 1})
    assert status == 200 and answer["data"]["id"] == "ml research"

    status, answer = await gw.admin("GET", "/budgets")
    assert [(b["scope"], b["id"]) for b in answer["data"]] == [
        ("global", ""),
        ("user", "alice"),
        ("team", "ml research"),
    ]
    status, answer = await gw.admin("DELETE", "/budgets/team/ml%20research")
    assert status == 200 and answer["data"] == {
        "scope": "team",
        "id": "ml research",
        "deleted": True,
    }
    status, answer = await gw.admin("DELETE", "/budgets/team/ml%20research")
    assert status == 404 and assert_error_shape(answer)["code"] == "budget_not_found"
    status, answer = await gw.admin("DELETE", "/budgets/global")
    assert status == 200
    status, answer = await gw.admin("GET", "/budgets")
    assert [b["id"] for b in answer["data"]] == ["alice"]


async def test_bad_budgets_are_400_naming_the_field(gw: GatewayHarness) -> None:
    path = "/budgets/user/bob"
    assert await error_param(gw, "PUT", path, {"limit_usd": -1}) == "limit_usd"
    assert await error_param(gw, "PUT", path, {"period": "day"}) == "limit_usd"
    assert await error_param(gw, "PUT", path, {"limit_usd": 1, "period": "week"}) == "period"
    assert await error_param(gw, "PUT", path, {"limit_usd": 1, "timezone": "Mars/Base"}) == (
        "timezone"
    )
    assert await error_param(gw, "PUT", path, {"limit_usd": 1, "alert_at": 0}) == "alert_at"
    assert await error_param(gw, "PUT", path, {"limit_usd": 1, "colour": "red"}) == "colour"
    assert await error_param(gw, "PUT", path, [1]) == "body"
    assert await error_param(gw, "PUT", "/budgets/org/acme", {"limit_usd": 1}) == "scope"
    assert await error_param(gw, "PUT", "/budgets/global/x", {"limit_usd": 1}) == "scope"
    assert await error_param(gw, "PUT", "/budgets/user/a%09b", {"limit_usd": 1}) == "id"
    assert await error_param(gw, "DELETE", "/budgets/org/acme") == "scope"
    status, answer = await gw.admin("GET", "/budgets")
    assert status == 200 and answer["data"] == []


async def test_cost_and_budget_metrics(gw: GatewayHarness) -> None:
    store = store_of(gw)
    gw.gateway.metrics.router.observe_cost("openai", "gpt-4o-mini", 0.25, gw.gateway.model_label)
    gw.gateway.metrics.router.observe_cost("openai", "made-up-model", 0.5, gw.gateway.model_label)
    gw.gateway.metrics.router.observe_cost("openai", "gpt-4o-mini", None)  # unknown price
    gw.gateway.metrics.router.observe_budget_alert("user")
    book = BudgetBook(store, store.keys)
    alice = budget_field("user", "alice")
    await book.set(alice, BudgetRecord(usd_to_nanos(5), "day"))
    status = await book.get(alice)
    assert status is not None
    spend = SpendRecord(status.period_id, usd_to_nanos(0.5), usd_to_nanos(1), False, 2)
    await store.client.hset(store.keys.budget_spend, alice, spend.encode())

    code, text, _ = await gw.request("GET", "/metrics")
    assert code == 200
    found = samples(str(text))
    cost = "llm_router_cost_usd_total"
    assert value(found, cost, provider="openai", model="gpt-4o-mini") == 0.25
    assert value(found, cost, provider="openai", model="other") == 0.5  # bounded label
    assert value(found, "llm_router_budget_alerts_total", scope="user") == 1
    assert value(found, "llm_router_budget_spent_usd", scope="user", id="alice") == 1
    assert value(found, "llm_router_budget_remaining_usd", scope="user", id="alice") == 3.5
    assert value(found, "llm_router_budget_limit_usd", scope="user", id="alice") == 5


async def test_at_most_a_hundred_budgets_are_exported(gw: GatewayHarness) -> None:
    store = store_of(gw)
    book = BudgetBook(store, store.keys)
    specs = [(budget_field("user", f"u{i:03}"), BudgetRecord(usd_to_nanos(1))) for i in range(120)]
    await book.sync([*specs, ("global", BudgetRecord(usd_to_nanos(10)))])
    busiest = budget_field("user", "u119")
    status = await book.get(busiest)
    assert status is not None
    spend = SpendRecord(status.period_id, 0, usd_to_nanos(0.9), False, 1).encode()
    await store.client.hset(store.keys.budget_spend, busiest, spend)
    code, text, _ = await gw.request("GET", "/metrics")
    assert code == 200
    found = samples(str(text))
    exported = {
        dict(labels)["id"] for (name, labels) in found if name == "llm_router_budget_remaining_usd"
    }
    assert len(exported) == MAX_BUDGET_SERIES
    assert {"", "u119"} <= exported  # the global budget and the most used one first


def test_the_collector_ranks_global_then_the_most_used() -> None:
    from keys.budgets import budget_status

    def status(field: str, spent: float) -> Any:
        spend = SpendRecord("d0", 0, usd_to_nanos(spent), False, 1)
        return budget_status(field, BudgetRecord(usd_to_nanos(1), "day"), spend, 60.0)

    collector = BudgetCollector(limit=2)
    collector.update([status("user:a", 0.1), status("user:b", 0.7), status("global", 0.0)])
    assert [s.id for s in collector.statuses] == ["", "b"]


async def test_the_commands_ask_a_gateway_on_the_embedded_store(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """A gateway without Redis keeps its usage log in its own process: ``--url`` reads it."""
    gw = await make_gateway(embedded=True)
    store = store_of(gw)
    now = await store.server_time()
    await add_call(store, int(now // 60), {"model": "gpt-4o"}, 10, 1, 0.125)
    written = {await add_record(store, record(now, n)): f"req-{n}" for n in range(3)}
    await BudgetBook(store, store.keys).set("global", BudgetRecord(usd_to_nanos(7)))
    remote = ["--url", gw.url, "--master-key", gw.master]
    env = {"REDIS_URL": ""}

    code, out, err = await run_cli(["usage", *remote, "--format", "json"], env, tmp_path)
    assert code == 0, err
    assert json.loads(out)["total"]["cost_usd"] == 0.125
    code, out, err = await run_cli(["usage", *remote, "export", "--since", "1h"], env, tmp_path)
    assert code == 0, err
    assert [json.loads(line)["request_id"] for line in out.splitlines()] == [
        written[i] for i in sorted(written, key=id_order)
    ]
    code, out, err = await run_cli(["budgets", *remote, "--format", "json"], env, tmp_path)
    assert code == 0, err
    assert [(b["scope"], b["limit_usd"]) for b in json.loads(out)] == [("global", 7)]
    code, _, err = await run_cli(["usage", *remote, "--since", "soon"], env, tmp_path)
    assert code == 2 and "400" in err and "since 'soon'" in err
    wrong = ["--url", gw.url, "--master-key", "wrong"]
    code, _, err = await run_cli(["budgets", *wrong], env, tmp_path)
    assert code == 2 and "401" in err
