"""``python -m router ...`` as child processes for the gateway's tests (serve, vkeys, health)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[3]


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment (already cleared of keys by tests/conftest.py) plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "ROUTER_"))}
    env.update({"LOG_LEVEL": "WARNING", "LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)})
    env.update(extra)
    return env


@dataclass
class ServeProcess:
    """A running ``python -m router serve``; its log goes to a file (never a full pipe)."""

    process: asyncio.subprocess.Process
    line: dict[str, Any]
    log: Path
    signalled: bool = False

    @property
    def url(self) -> str:
        return str(self.line["url"])

    def send(self, sig: int = signal.SIGTERM) -> None:
        """Ask the process to stop (once: a second signal could land after its handlers are gone)."""
        if self.process.returncode is None and not self.signalled:
            self.signalled = True
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def stop(self, sig: int = signal.SIGTERM, wait_seconds: float = 60.0) -> int:
        self.send(sig)
        try:
            return await asyncio.wait_for(self.process.wait(), wait_seconds)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(
                f"serve did not stop in {wait_seconds}s; log: {self.log.read_text()[-2000:]}"
            ) from None


def _new_log(cwd: Path) -> Path:
    return cwd / f"serve-{len(list(cwd.glob('serve-*.log')))}.log"


async def start_serve(
    args: list[str], env: Mapping[str, str], cwd: Path, wait_seconds: float = 60.0
) -> ServeProcess:
    """Start ``python -m router serve ARGS`` and wait for its "listening" line."""
    log = _new_log(cwd)
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "router",
            "serve",
            *args,
            cwd=cwd,
            env=child_env(env),
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
        )
    assert process.stdout is not None
    try:
        raw = await asyncio.wait_for(process.stdout.readline(), wait_seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"serve did not start; log: {log.read_text()[-3000:]}") from None
    if not raw:
        await process.wait()
        raise AssertionError(f"serve exited {process.returncode}; log: {log.read_text()[-3000:]}")
    return ServeProcess(process, json.loads(raw), log)


async def run_cli(
    args: list[str], env: Mapping[str, str], cwd: Path, wait_seconds: float = 60.0
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``python -m router ARGS``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "router",
        *args,
        cwd=cwd,
        env=child_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), wait_seconds)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def fresh_get(url: str, token: str | None = None) -> tuple[int, Any]:
    """GET on a new connection (so SO_REUSEPORT may pick any worker)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers) as response,
    ):
        text = await response.text()
        with contextlib.suppress(ValueError):
            return response.status, json.loads(text)
        return response.status, text


async def fresh_post(url: str, body: Any, token: str | None = None) -> tuple[int, Any]:
    """POST on a new connection."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        text = await response.text()
        with contextlib.suppress(ValueError):
            return response.status, json.loads(text)
        return response.status, text
