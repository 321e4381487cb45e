"""Stopping a child process the library started (the simulator, the demo's gateway)."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any] | None, *, grace: float = 10.0) -> None:
    """SIGTERM, wait ``grace`` seconds, then SIGKILL; close its stdout pipe. None is a no-op."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()
