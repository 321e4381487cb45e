"""schemathesis against /openapi.json: no 5xx, every 4xx a well-formed OpenAI error (Anthropic's
shape on the Anthropic-compatible /v1/messages routes and their bare aliases).

Both valid and invalid requests are generated from the gateway's own OpenAPI document. The OpenAI
routes run with a virtual key and the admin routes with the master key, each on a gateway of its
own (admin calls change the pool). The number of examples is bounded to keep the run short.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from router.gateway.openapi import build_openapi
from router.gateway.routes import error_shape
from tests.conftest import unique_prefix
from tests.router.gateway.harness import GatewayHarness, PoolKey, assert_error_shape
from tests.router.gateway.threaded import ThreadedGateway

pytestmark = pytest.mark.integration

SCHEMA = schemathesis.openapi.from_dict(build_openapi("test"))
OPENAI = SCHEMA.include(path_regex=r"^/(v1|health|status|metrics|openapi)")
ADMIN = SCHEMA.include(path_regex=r"^/api/v1/admin")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def well_formed(response: Any, path: str = "") -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code < 400:
        return
    if error_shape(path) == "anthropic":
        body = response.json()
        assert set(body) == {"type", "error", "request_id"} and body["type"] == "error", body
        assert set(body["error"]) == {"type", "message"} and body["error"]["message"], body
    else:
        assert_error_shape(response.json())


def _gateway(
    tmp_path: Path, redis_url: str
) -> Iterator[tuple[str, dict[str, str], GatewayHarness]]:
    pool = [PoolKey("fuzz-a", rpm=100_000), PoolKey("fuzz-b", rpm=100_000)]
    harness = GatewayHarness(tmp_path, redis_url, unique_prefix(), pool=pool)
    with ThreadedGateway(harness) as running:
        key = running.call(harness.vkey(name="fuzz"))
        yield harness.url, {"Authorization": f"Bearer {key}"}, harness


@pytest.fixture(scope="module")
def openai_gateway(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[str, dict[str, str]]]:
    for url, headers, _ in _gateway(tmp_path_factory.mktemp("fuzz-openai"), redis_url):
        yield url, headers


@pytest.fixture(scope="module")
def admin_gateway(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[str, dict[str, str]]]:
    for url, _, harness in _gateway(tmp_path_factory.mktemp("fuzz-admin"), redis_url):
        yield url, {"Authorization": f"Bearer {harness.master}"}


@OPENAI.parametrize()
@EXAMPLES
def test_openai_routes(case: schemathesis.Case, openai_gateway: tuple[str, dict[str, str]]) -> None:
    url, headers = openai_gateway
    response = case.call(base_url=url, headers=headers, timeout=30)
    well_formed(response, case.path)
    case.validate_response(response, checks=CHECKS)


@ADMIN.parametrize()
@EXAMPLES
def test_admin_routes(case: schemathesis.Case, admin_gateway: tuple[str, dict[str, str]]) -> None:
    url, headers = admin_gateway
    response = case.call(base_url=url, headers=headers, timeout=30)
    well_formed(response)
    case.validate_response(response, checks=CHECKS)
