"""``LOG_FILE``: the same masked structured log, to a file rotated by size (document 004's
``logs/llm_router.log``), its directory created."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from kernel import log as router_log
from kernel.errors import ConfigError
from kernel.log import configure_logging, get_logger, log_file_options
from tests import keygen


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()
    saved["processors"] = list(saved["processors"])
    configured = router_log._configured
    yield
    for handler in root.handlers:
        if getattr(handler, "_llm_router_file", False):
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**saved)
    router_log._configured = configured


def configure(monkeypatch: pytest.MonkeyPatch, path: Path, **env: str) -> None:
    monkeypatch.setenv("LOG_FILE", str(path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    configure_logging(level="INFO", fmt="json", force=True)


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_log_file_gets_the_masked_structured_log_in_a_new_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "logs" / "llm_router.log"
    configure(monkeypatch, path)
    secret, other = keygen.openai_project_key(), keygen.anthropic_key()
    get_logger("router.test").warning(f"key {secret} failed", api_key=other, key_id="k1")
    logging.getLogger("aiohttp.client").error("header was Authorization: Bearer %s", secret)
    text = path.read_text(encoding="utf-8")
    assert secret not in text and other not in text
    assert secret[-20:-4] not in text and other[-20:-4] not in text
    ours, theirs = records(path)
    assert ours["event"] == f"key {secret[:11]}...{secret[-4:]} failed"
    assert ours["key_id"] == "k1" and ours["level"] == "warning"
    assert "timestamp" in ours and ours["logger"] == "router.test"
    assert theirs["logger"] == "aiohttp.client"


def test_the_log_file_rotates_by_size_keeping_the_backups(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "llm_router.log"
    configure(monkeypatch, path, LOG_FILE_MAX_BYTES="2048", LOG_FILE_BACKUPS="2")
    log = get_logger("router.test")
    secret = keygen.gemini_key()
    for i in range(200):
        log.info("request served", n=i, key=secret)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["llm_router.log", "llm_router.log.1", "llm_router.log.2"]
    numbers = []
    for name in ("llm_router.log.2", "llm_router.log.1", "llm_router.log"):
        part = tmp_path / name
        assert part.stat().st_size <= 2048
        assert secret not in part.read_text(encoding="utf-8")
        numbers += [r["n"] for r in records(part)]
    # the newest records, in order, with none lost between the files kept
    assert numbers == list(range(200 - len(numbers), 200)) and numbers[-1] == 199


def test_pid_in_the_name_gives_each_process_its_own_file(tmp_path: Path) -> None:
    options = log_file_options({"LOG_FILE": str(tmp_path / "router.{pid}.log")})
    assert options is not None
    assert options[0] == tmp_path / f"router.{os.getpid()}.log"
    assert options[1:] == (10 * 1024 * 1024, 5)


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"LOG_FILE_MAX_BYTES": "ten"}, "LOG_FILE_MAX_BYTES"),
        ({"LOG_FILE_MAX_BYTES": "10"}, "LOG_FILE_MAX_BYTES"),
        ({"LOG_FILE_BACKUPS": "-1"}, "LOG_FILE_BACKUPS"),
    ],
)
def test_bad_sizes_name_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        log_file_options({"LOG_FILE": "x.log", **env})


def test_a_file_that_cannot_be_opened_is_logged_and_logging_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    configure(monkeypatch, blocker / "llm_router.log")
    err = capsys.readouterr().err
    assert "log file not written" in err and "LOG_FILE" in err


def test_without_log_file_there_is_no_file_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_FILE", raising=False)
    configure_logging(level="INFO", fmt="json", force=True)
    assert not [h for h in logging.getLogger().handlers if getattr(h, "_llm_router_file", False)]
