"""Document 001's per-deployment roles on the admin API, as two tokens: the master key
(``admin``: everything) and ``DASHBOARD_TOKEN`` (``read``: stats, status, usage; no change, a 403
naming the role). Real gateway, real Redis, the provider simulator."""

from __future__ import annotations

import pytest

from tests import keygen
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import assert_error_shape
from tests.router.gateway.test_admin import admin_operations

pytestmark = pytest.mark.integration

READS = [
    "/openai/stats",
    "/keys",
    "/keys/pool-a",
    "/vkeys",
    "/usage?since=1h&by=model",
    "/usage/records?since=1h",
    "/budgets",
]


async def test_the_read_only_token_reads_stats_status_and_usage(
    make_gateway: GatewayFactory,
) -> None:
    reader = "read-" + keygen.openai_project_key()[8:40]
    gw = await make_gateway(DASHBOARD_TOKEN=reader)
    for path in READS:
        status, body, _ = await gw.request("GET", "/api/v1/admin" + path, token=reader)
        assert status == 200, (path, body)
        assert body["success"] is True
    _, stats, _ = await gw.request("GET", "/api/v1/admin/openai/stats", token=reader)
    assert stats["data"]["total_keys"] == 2
    status, keys, _ = await gw.request("GET", "/api/v1/admin/keys", token=reader)
    assert {k["key_id"] for k in keys["data"]} == {"pool-a", "pool-b"}


async def test_the_read_only_token_changes_nothing_and_is_told_its_role(
    make_gateway: GatewayFactory,
) -> None:
    reader = "read-" + keygen.openai_project_key()[8:40]
    gw = await make_gateway(DASHBOARD_TOKEN=reader)
    writes = [(m, p) for m, p in admin_operations() if m not in ("GET", "HEAD")]
    assert len(writes) >= 12
    for method, path in writes:
        body = {"seconds": 60} if path.endswith("/cooldown") else {}
        status, answer, _ = await gw.request(method, path, token=reader, body=body)
        assert status == 403, (method, path, answer)
        error = assert_error_shape(answer)
        assert error["code"] == "read_only" and error["type"] == "permission_error"
        assert "read-only role (DASHBOARD_TOKEN)" in error["message"]
        assert f"{method} {path}" in error["message"] and "admin role" in error["message"]
        assert reader not in error["message"]
    # nothing changed: both keys still active, no cooldown, nothing removed
    status, keys = await gw.admin("GET", "/keys")
    assert status == 200
    assert {k["key_id"]: k["state"] for k in keys["data"]} == {
        "pool-a": "healthy",
        "pool-b": "healthy",
    }


async def test_the_master_key_keeps_the_admin_role(make_gateway: GatewayFactory) -> None:
    reader = "read-" + keygen.openai_project_key()[8:40]
    gw = await make_gateway(DASHBOARD_TOKEN=reader)
    status, body = await gw.admin("POST", "/keys/pool-b/deactivate")
    assert status == 200, body
    status, keys, _ = await gw.request("GET", "/api/v1/admin/keys/pool-b", token=reader)
    assert status == 200 and keys["data"]["state"] == "disabled"


async def test_without_a_read_token_only_the_master_key_opens_the_admin_api(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    for token in (None, "", "read-anything"):
        status, body, _ = await gw.request("GET", "/api/v1/admin/openai/stats", token=token)
        assert status == 401, token
        assert assert_error_shape(body)["code"] == "invalid_master_key"
