"""``python -m router serve`` in a child process, driven the way an operator would drive it.

The child gets a clean environment: only what a Python process needs to run (``PATH``, ``HOME``,
``PYTHONPATH``, ...) plus the variables given here. Nothing else of the caller's environment
reaches it, so a real ``OPENAI_API_KEY`` or ``REDIS_URL`` of the person running the demo (or a
benchmark) can never join the pool. A master key is made for the child; a virtual key is then
created through the admin API, as an operator would, and used by the clients.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from router.processes import stop_process

#: Variables of the caller's environment a Python child needs; everything else is left out.
PASSED_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "TZ",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "SYSTEMROOT",
    "TIKTOKEN_CACHE_DIR",
)


class GatewayError(RuntimeError):
    """The gateway did not start or did not answer; ``log`` holds what it printed."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message + (f"\n--- gateway log ---\n{log}" if log else ""))
        self.log = log


class GatewayProcess:
    """A gateway on a free loopback port over ``keys_path`` (secrets in ``environ``)."""

    def __init__(
        self,
        keys_path: str | Path,
        environ: dict[str, str],
        *,
        settings: dict[str, str] | None = None,
        python: str = sys.executable,
        startup_timeout: float = 60.0,
        workers: int = 1,
        cwd: str | Path | None = None,
    ) -> None:
        self.keys_path = str(keys_path)
        self.master_key = "sk-master-" + secrets.token_urlsafe(24)
        self.env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
        self.env.update(environ)
        self.env.update(settings or {})
        self.env["ROUTER_MASTER_KEY"] = self.master_key
        self.python = python
        self.startup_timeout = startup_timeout
        self.workers = workers
        #: The child's working directory (``python -m`` imports from it first: a benchmark
        #: running another checkout's gateway sets it there).
        self.cwd = cwd
        self.url = ""
        self.pid = 0
        self.virtual_key = ""
        self._process: subprocess.Popen[str] | None = None
        self._log = tempfile.TemporaryFile(mode="w+", prefix="gateway-log-")  # noqa: SIM115 - closed by close()

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, *, virtual_key: bool = True) -> GatewayProcess:
        command = [self.python, "-m", "router", "serve", "--host", "127.0.0.1", "--port", "0"]
        command += ["--keys", self.keys_path]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )
        ready = self._read_listening_line()
        self.url = f"http://127.0.0.1:{int(ready['port'])}"
        self.pid = int(ready.get("pid") or self._process.pid)
        self._wait_ready()
        if virtual_key:
            created = self.admin("POST", "/api/v1/admin/vkeys", {"name": "demo"})
            self.virtual_key = str(created["key"])
        return self

    def _read_listening_line(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        found: dict[str, Any] = {}
        stdout = self._process.stdout

        def read() -> None:
            for line in stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("event") == "listening":
                    found.update(event)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        if "port" not in found:
            log = self.log()
            self.stop()
            raise GatewayError("the gateway did not report its address", log)
        return found

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health/ready", timeout=5) as answer:  # noqa: S310 - loopback URL we started
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self._process is not None and self._process.poll() is not None:
                break
            time.sleep(0.1)
        log = self.log()
        self.stop()
        raise GatewayError("the gateway did not become ready", log)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process, grace=20)

    def close(self) -> None:
        self.stop()
        self._log.close()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self) -> str:
        """What the gateway printed on stderr so far (its logs, secrets masked by it)."""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read()
        self._log.seek(0, os.SEEK_END)
        return text

    # -- talking to it ---------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """An admin API call with the master key; its ``data``."""
        answer = self._request(method, path, body, self.master_key)
        return answer["data"] if isinstance(answer, dict) and "data" in answer else answer

    def key_statuses(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.admin("GET", "/api/v1/admin/keys")
        return result

    def metrics(self) -> str:
        request = urllib.request.Request(self.url + "/metrics")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return str(answer.read().decode())

    def _request(self, method: str, path: str, body: Any, token: str) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise GatewayError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
