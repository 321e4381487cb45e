"""Running the simulator beside code that is not async, or in a process of its own.

:func:`run_in_thread` starts it on its own event loop in a daemon thread (for synchronous tests and
demos). :class:`SimulatorProcess` starts ``python -m router simulate-providers`` as a child process
(benchmarks use it so the simulator does not share a core's event loop with the code measured) and
talks to its ``/_sim`` routes over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from router.processes import stop_process
from router.simulator.config import FaultConfig, SimKey, SimulatorConfig
from router.simulator.server import ProviderSimulator

T = TypeVar("T")


class SimulatorThread:
    """A :class:`ProviderSimulator` running on its own loop in a daemon thread."""

    def __init__(
        self, config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.simulator = ProviderSimulator(config, host=host, port=port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="provider-simulator", daemon=True
        )

    def start(self) -> SimulatorThread:
        if self._thread.is_alive():
            return self
        self._thread.start()
        self._call(self.simulator.start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self.simulator.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def _sync(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return fn(*args, **kwargs)

        return self._call(run())

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.simulator.base_url

    def base_url_for(self, provider: str, deployment: str | None = None) -> str:
        return self.simulator.base_url_for(provider, deployment)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._sync(self.simulator.stats)
        return result

    def set_faults(self, faults: FaultConfig | dict[str, Any], key_id: str | None = None) -> None:
        self._sync(self.simulator.set_faults, faults, key_id)

    def add_key(self, key: SimKey | dict[str, Any]) -> None:
        self._sync(self.simulator.add_key, key)

    def revoke_key(self, key_id: str) -> None:
        self._sync(self.simulator.revoke_key, key_id)

    def reset_stats(self, *, limits: bool = False) -> None:
        self._sync(self.simulator.reset_stats, limits=limits)


def run_in_thread(
    config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> SimulatorThread:
    """Start a simulator in a background thread; use as a context manager or call ``stop()``."""
    return SimulatorThread(config, host=host, port=port).start()


class SimulatorProcess:
    """``python -m router simulate-providers`` in a child process, controlled over HTTP."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.host = host
        self.port = port
        self.python = python
        self.env = env
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self._process: subprocess.Popen[str] | None = None
        self._config_path: Path | None = None

    def start(self) -> SimulatorProcess:
        if self._process is not None:
            return self
        handle, name = tempfile.mkstemp(prefix="simulator-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(self.config.model_dump_json())
        self._config_path = Path(name)
        command = [
            self.python,
            "-m",
            "router",
            "simulate-providers",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--config",
            name,
        ]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env
        )
        ready = self._read_ready_line()
        self.base_url = str(ready["url"])
        self.port = int(ready["port"])
        return self

    def _read_ready_line(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        result: dict[str, Any] = {}

        def read() -> None:
            assert self._process is not None and self._process.stdout is not None
            line = self._process.stdout.readline()
            if line:
                result.update(json.loads(line))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        if "url" not in result:
            self.stop()
            raise RuntimeError("the simulator process did not report its address in time")
        return result

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)
        if self._config_path is not None:
            self._config_path.unlink(missing_ok=True)
            self._config_path = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def base_url_for(self, provider: str, deployment: str | None = None) -> str:
        if provider == "openai":
            return self.base_url + "/v1"
        if provider == "azure":
            return f"{self.base_url}/openai/deployments/{deployment}"
        return self.base_url

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310 - loopback URL we started
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "/_sim/stats")
        return result

    def set_faults(self, faults: FaultConfig | dict[str, Any], key_id: str | None = None) -> None:
        body = faults.model_dump() if isinstance(faults, FaultConfig) else faults
        self._admin("PUT", f"/_sim/keys/{key_id}/faults" if key_id else "/_sim/faults", body)

    def add_key(self, key: SimKey | dict[str, Any]) -> None:
        self._admin("POST", "/_sim/keys", key.model_dump() if isinstance(key, SimKey) else key)

    def revoke_key(self, key_id: str) -> None:
        self._admin("POST", f"/_sim/keys/{key_id}/revoke", {})

    def reset_stats(self, *, limits: bool = False) -> None:
        self._admin("POST", "/_sim/reset" + ("?limits=true" if limits else ""), {})
