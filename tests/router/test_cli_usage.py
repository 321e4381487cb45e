"""``python -m router usage``, ``usage export`` and ``budgets`` as a user runs them: child
processes reading the usage log and budgets a test wrote into real Redis."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from kernel.store import Store
from keys.budgets import BudgetBook
from lua.usage_records import BudgetRecord, SpendRecord, budget_field, usd_to_nanos
from tests.router.gateway.processes import run_cli
from tests.router.usage_data import add_call, add_record, record

pytestmark = pytest.mark.integration


def store_env(store: Store) -> dict[str, str]:
    return {"REDIS_URL": store.url, "REDIS_KEY_PREFIX": store.keys.prefix}


async def seed_usage(store: Store) -> list[str]:
    now = await store.server_time()
    minute = int(now // 60)
    await add_call(store, minute - 20, {"model": "gpt-4o", "user": "alice"}, 100, 10, 0.5)
    await add_call(store, minute, {"model": "gpt-4o-mini", "user": "bob"}, 20, 2, 0.01)
    await add_call(store, minute - 300, {"model": "gpt-4o", "user": "alice"}, 1, 1, 7.0)
    ids = []
    for n in range(5):
        ids.append(await add_record(store, record(now, n, user="alice" if n % 2 else "bob")))
    return ids


async def test_summary_in_every_format(store: Store, tmp_path: Path) -> None:
    await seed_usage(store)
    env = store_env(store)
    code, out, err = await run_cli(["usage", "--since", "1h", "--format", "json"], env, tmp_path)
    assert code == 0, err
    report = json.loads(out)
    assert {r["name"]: r["requests"] for r in report["rows"]} == {"gpt-4o": 1, "gpt-4o-mini": 1}
    assert report["total"]["cost_usd"] == 0.51 and report["by"] == "model"

    code, out, err = await run_cli(["usage", "--by", "user"], env, tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("usage from ") and lines[0].endswith("by user")
    assert lines[1].split() == ["user", "requests", "tokens_in", "tokens_out", "cost_usd", "errors"]
    assert lines[2].split() == ["alice", "1", "100", "10", "0.500000", "0"]
    assert lines[-1].split() == ["total", "2", "120", "12", "0.510000", "0"]
    assert len({len(line) for line in lines[1:]}) == 1  # aligned columns

    code, out, err = await run_cli(
        ["usage", "--since", "2h", "--by", "model", "--format", "csv"], env, tmp_path
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == ["gpt-4o", "gpt-4o-mini", "total"]
    assert rows[-1]["requests"] == "2"


async def test_export_streams_json_lines_in_order(store: Store, tmp_path: Path) -> None:
    await seed_usage(store)
    env = store_env(store)
    code, out, err = await run_cli(["usage", "export", "--since", "10m"], env, tmp_path)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["request_id"] for r in lines] == [f"req-{n}" for n in range(5)]
    code, out, err = await run_cli(["usage", "export", "--user", "alice"], env, tmp_path)
    assert code == 0, err
    assert [json.loads(line)["request_id"] for line in out.splitlines()] == ["req-1", "req-3"]


async def test_bad_options_and_no_shared_store(store: Store, tmp_path: Path) -> None:
    env = store_env(store)
    code, _, err = await run_cli(["usage", "--since", "yesterday"], env, tmp_path)
    assert code == 2 and "--since 'yesterday'" in err
    code, _, err = await run_cli(["usage", "export", "--until", "soon"], env, tmp_path)
    assert code == 2 and "--until 'soon'" in err
    code, _, err = await run_cli(["usage", "--since", "1h", "--until", "2h"], env, tmp_path)
    assert code == 2 and "--since must be before until" in err
    code, out, err = await run_cli(["usage"], {"REDIS_URL": ""}, tmp_path)
    assert code == 2 and out == "" and "no shared store" in err
    code, _, err = await run_cli(["budgets"], {"REDIS_URL": ""}, tmp_path)
    assert code == 2 and "no shared store" in err


async def test_budgets_list(store: Store, tmp_path: Path) -> None:
    env = store_env(store)
    code, out, err = await run_cli(["budgets"], env, tmp_path)
    assert code == 0 and out == "(no budgets)\n", err
    book = BudgetBook(store, store.keys)
    alice = budget_field("user", "alice")
    await book.set(alice, BudgetRecord(usd_to_nanos(5), "day"))
    await book.set("global", BudgetRecord(usd_to_nanos(100)))
    status = await book.get(alice)
    assert status is not None
    spend = SpendRecord(status.period_id, 0, usd_to_nanos(1.25), False, 3).encode()
    await store.client.hset(store.keys.budget_spend, alice, spend)

    code, out, err = await run_cli(["budgets", "--format", "json"], env, tmp_path)
    assert code == 0, err
    listed = json.loads(out)
    assert [(b["scope"], b["id"]) for b in listed] == [("global", ""), ("user", "alice")]
    assert listed[1]["spent_usd"] == 1.25 and listed[1]["remaining_usd"] == 3.75
    code, out, err = await run_cli(["budgets"], env, tmp_path)
    assert code == 0, err
    assert out.splitlines()[2].split()[:8] == [
        "user",
        "alice",
        "5.00",
        "day",
        "UTC",
        "1.250000",
        "0.000000",
        "3.750000",
    ]


async def test_export_into_a_reader_that_stops_early_exits_quietly(
    store: Store, tmp_path: Path
) -> None:
    """``usage export | head``: the closed pipe ends the export without an error."""
    import asyncio
    import sys

    from tests.router.gateway.processes import child_env

    now = await store.server_time()
    pipe = store.client.pipeline(transaction=False)
    for n in range(3000):  # far more than a pipe holds
        pipe.xadd(store.keys.usage_stream, {"r": record(now, n).to_json()})
    await pipe.execute()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "router",
        "usage",
        "export",
        cwd=tmp_path,
        env=child_env(store_env(store)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    first = await asyncio.wait_for(process.stdout.readline(), 60)
    assert json.loads(first)["request_id"] == "req-0"
    process.stdout.feed_eof()
    transport = process._transport  # type: ignore[attr-defined]
    transport.get_pipe_transport(1).close()  # the reader goes away, as head does
    err = await asyncio.wait_for(process.stderr.read(), 60)
    assert await process.wait() == 0, err
    assert b"Broken pipe" not in err and b"Traceback" not in err
