"""kernel.jsonio: orjson when installed, the standard library otherwise, the same JSON either way."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kernel import jsonio


@pytest.fixture(params=["orjson", "stdlib"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stdlib":
        monkeypatch.setattr(jsonio, "_orjson", None)
    else:
        pytest.importorskip("orjson")
    return str(request.param)


def test_round_trip_is_compact_utf8(backend: str) -> None:
    value = {"model": "gpt-4o", "messages": [{"role": "user", "content": "héllo ✓"}], "n": 1.5}
    data = jsonio.dumps(value)
    assert isinstance(data, bytes) and b" " not in data.replace("héllo ✓".encode(), b"")
    assert "héllo ✓".encode() in data  # not \\u-escaped
    assert jsonio.loads(data) == value == json.loads(data)


def test_what_orjson_refuses_is_still_written(backend: str) -> None:
    value = {1: "int key", "big": 2**70, "when": datetime(2026, 1, 2, tzinfo=UTC)}
    decoded = json.loads(jsonio.dumps(value))
    assert decoded["1"] == "int key" and decoded["big"] == 2**70
    assert decoded["when"].startswith("2026-01-02")


def test_invalid_json_raises_value_error(backend: str) -> None:
    with pytest.raises(ValueError):
        jsonio.loads(b"{not json")


@pytest.mark.parametrize("depth", [jsonio.MAX_DEPTH + 1, 1_100, 100_000])
def test_deep_nesting_is_a_value_error_naming_the_limit(backend: str, depth: int) -> None:
    for opening, closing in ((b"[", b"]"), (b'{"a":', b"}")):
        data = opening * depth + b"1" + closing * depth
        with pytest.raises(jsonio.TooDeepError, match="nested deeper than 128"):
            jsonio.loads(data)
        with pytest.raises(jsonio.TooDeepError):
            jsonio.loads(data.decode())


def test_nesting_up_to_the_limit_parses_and_writes(backend: str) -> None:
    data = b"[" * jsonio.MAX_DEPTH + b"]" * jsonio.MAX_DEPTH
    value = jsonio.loads(data)
    assert jsonio.dumps({"body": value}) == b'{"body":' + data + b"}"
    # brackets inside strings are not nesting
    text = {"content": "[" * 10_000}
    assert jsonio.loads(jsonio.dumps(text)) == text
