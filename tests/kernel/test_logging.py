"""The logging pipeline masks secrets in event values and in exception tracebacks, for structlog
loggers and for standard-library loggers (aiohttp, redis, boto3 ...), in JSON and console output.

Each test configures logging for real and reads what was written to stderr.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from kernel import log as router_log
from kernel.log import configure_logging, get_logger, mask_secrets
from kernel.masking import forget_secret, mask_secret, register_secret
from tests import keygen


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger and structlog back as they were (our handler writes to this test's
    captured stderr, which is closed once the test ends)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()
    saved["processors"] = list(saved["processors"])
    configured = router_log._configured
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**saved)
    router_log._configured = configured


Read = Callable[[], str]


def capture(capsys: pytest.CaptureFixture[str], fmt: str) -> Read:
    """Configure logging as the command line does and return a reader of what reaches stderr.

    Called in the test itself: the handler keeps the stderr of the moment it is configured, and
    pytest gives each phase (setup, call) its own captured stream.
    """
    configure_logging(level="DEBUG", fmt=fmt, force=True)
    capsys.readouterr()
    return lambda: capsys.readouterr().err


def events(text: str) -> list[dict[str, Any]]:
    assert "Logging error" not in text, text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_gone(secret: str, text: str) -> None:
    assert secret not in text
    assert secret[-20:-4] not in text, "a piece of the secret is left"


# -- structlog events -------------------------------------------------------------------------------


def test_event_values_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    read = capture(capsys, "json")
    openai, anthropic, gemini = (
        keygen.openai_project_key(),
        keygen.anthropic_key(),
        keygen.gemini_key(),
    )
    get_logger("router.test").info(
        f"using key {openai}",
        key=anthropic,
        nested={"headers": {"x-goog-api-key": gemini}, "attempt": 2},
        tried=[openai, "gemini-flash-01"],
        pair=(anthropic, 3),
        key_id="gemini-flash-01",
    )
    out = read()
    for secret in (openai, anthropic, gemini):
        assert_gone(secret, out)
    (event,) = events(out)
    assert event["event"] == f"using key {mask_secret(openai)}"
    assert event["key"] == mask_secret(anthropic)
    assert event["nested"] == {"headers": {"x-goog-api-key": mask_secret(gemini)}, "attempt": 2}
    assert event["tried"] == [mask_secret(openai), "gemini-flash-01"]
    assert event["pair"] == [mask_secret(anthropic), 3]
    assert event["key_id"] == "gemini-flash-01"  # identifiers stay readable
    assert event["level"] == "info" and event["logger"] == "router.test"


def test_values_logged_under_a_credential_name_are_masked_whatever_they_look_like(
    capsys: pytest.CaptureFixture[str],
) -> None:
    read = capture(capsys, "json")
    opaque = keygen.opaque_secret(24)
    get_logger("router.test").warning(
        "gateway login",
        api_key=opaque,
        password=opaque,
        authorization=f"Basic {opaque}",
        headers={"X-Api-Key": opaque, "accept": "application/json"},
        secret_ref="env:OPENAI_API_KEY",
        tokens=1234,
    )
    out = read()
    assert_gone(opaque, out)
    (event,) = events(out)
    assert event["api_key"] == event["password"] == mask_secret(opaque)
    assert event["headers"]["accept"] == "application/json"
    assert event["secret_ref"] == "env:OPENAI_API_KEY" and event["tokens"] == 1234


def test_registered_secrets_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    read = capture(capsys, "json")
    opaque = keygen.opaque_secret(30)
    register_secret(opaque)
    try:
        get_logger("router.test").info("upstream answered", body=f"invalid credential {opaque}")
    finally:
        forget_secret(opaque)
    assert_gone(opaque, read())


def test_exception_tracebacks_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    read = capture(capsys, "json")
    first, second = keygen.openai_legacy_key(), keygen.gemini_key()
    log = get_logger("router.test")
    try:
        try:
            raise ValueError(f"provider rejected {first}")
        except ValueError as exc:
            raise RuntimeError(f"retry failed, url ...?key={second}") from exc
    except RuntimeError:
        log.exception("call failed", attempt=3)
    out = read()
    assert_gone(first, out)
    assert_gone(second, out)
    (event,) = events(out)
    assert "Traceback (most recent call last)" in event["exception"]
    assert f"ValueError: provider rejected {mask_secret(first)}" in event["exception"]
    assert "The above exception was the direct cause" in event["exception"]


def test_an_exception_passed_as_a_value_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    read = capture(capsys, "json")
    secret = keygen.anthropic_key()
    get_logger("router.test").error("failed", error=PermissionError(f"401 for {secret}"))
    out = read()
    assert_gone(secret, out)
    assert events(out)[0]["error"] == f"PermissionError: 401 for {mask_secret(secret)}"


# -- standard-library loggers -----------------------------------------------------------------------


def test_stdlib_messages_and_arguments_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    read = capture(capsys, "json")
    secret = keygen.openai_project_key()
    logging.getLogger("aiohttp.client").warning(
        "sent headers %s", {"Authorization": f"Bearer {secret}"}
    )
    out = read()
    assert_gone(secret, out)
    (event,) = events(out)
    assert event["logger"] == "aiohttp.client" and event["level"] == "warning"
    assert mask_secret(secret) in event["event"]


def test_stdlib_tracebacks_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    read = capture(capsys, "json")
    secret = keygen.aws_access_key_id()
    try:
        raise ConnectionError(f"signature mismatch for {secret}")
    except ConnectionError:
        logging.getLogger("botocore.endpoint").exception("request failed")
    out = read()
    assert_gone(secret, out)
    (event,) = events(out)
    assert f"ConnectionError: signature mismatch for {mask_secret(secret)}" in event["exception"]


# -- console output -------------------------------------------------------------------------------


def test_console_output_is_masked_too(capsys: pytest.CaptureFixture[str]) -> None:
    read = capture(capsys, "console")
    secret, other = keygen.anthropic_key(), keygen.gemini_key()
    log = get_logger("router.test")
    log.info("selected", key=secret)
    try:
        raise RuntimeError(f"bad key {other}")
    except RuntimeError:
        log.exception("failed")
        logging.getLogger("redis").exception("stdlib failed %s", secret)
    out = read()
    for value in (secret, other):
        assert_gone(value, out)
    assert mask_secret(secret) in out
    assert f"RuntimeError: bad key {mask_secret(other)}" in out
    assert out.count("Traceback (most recent call last)") == 2
    assert "\x1b[" not in out  # no colours when stderr is not a terminal


def test_logs_go_to_stderr_only(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json", force=True)
    capsys.readouterr()
    get_logger("router.test").warning("hello")
    logging.getLogger("other").warning("world")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert [e["event"] for e in events(captured.err)] == ["hello", "world"]


def test_the_level_is_respected(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="WARNING", fmt="json", force=True)
    capsys.readouterr()
    get_logger("router.test").info("quiet")
    logging.getLogger("x").info("quiet too")
    get_logger("router.test").warning("loud")
    assert [e["event"] for e in events(capsys.readouterr().err)] == ["loud"]


def test_a_library_does_not_take_over_configured_logging(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_llm_router", False)]
    application = logging.StreamHandler()
    root.addHandler(application)
    router_log._configured = False
    configure_logging()  # as get_logger does on first use
    assert [h for h in root.handlers if getattr(h, "_llm_router", False)] == []
    configure_logging(force=True)  # the command line and the gateway take over on purpose
    assert len([h for h in root.handlers if getattr(h, "_llm_router", False)]) == 1


# -- the processor ---------------------------------------------------------------------------------


def test_mask_secrets_is_a_plain_structlog_processor() -> None:
    secret = keygen.gemini_key()
    with structlog.testing.capture_logs(processors=[mask_secrets]) as captured:
        structlog.get_logger("x").info("call", url=f"https://host/v1?key={secret}", n=1)
    assert captured == [
        {
            "event": "call",
            "url": f"https://host/v1?key={mask_secret(secret)}",
            "n": 1,
            "log_level": "info",
        }
    ]
