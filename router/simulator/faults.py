"""Which injected fault a call draws (before or after admission), and the status it answers with.

A key's :class:`~router.simulator.config.FaultConfig` gives each fault a rate; one uniform draw in
[0, 1) picks at most one of them: the pre-admission faults first, then the post-admission ones.
"""

from __future__ import annotations

from router.simulator.config import POST_ADMISSION_FAULTS, PRE_ADMISSION_FAULTS, FaultConfig

_FAULT_NAMES = {
    "spurious_429_rate": "spurious_429",
    "overload_rate": "overload",
    "error_rate": "server_error",
    "reset_rate": "reset",
    "timeout_rate": "timeout",
    "malformed_rate": "malformed",
    "stream_cut_rate": "stream_cut",
}


def pre_admission_fault(faults: FaultConfig, draw: float) -> str | None:
    """The fault answered before admission (``spurious_429``, ``overload``, ...), or None."""
    edge = 0.0
    for name in PRE_ADMISSION_FAULTS:
        edge += getattr(faults, name)
        if draw < edge:
            return _FAULT_NAMES[name]
    return None


def post_admission_fault(faults: FaultConfig, draw: float) -> str | None:
    """The fault of an admitted call (``timeout``, ``malformed``, ``stream_cut``), or None."""
    edge = sum(getattr(faults, name) for name in PRE_ADMISSION_FAULTS)
    for name in POST_ADMISSION_FAULTS:
        edge += getattr(faults, name)
        if draw < edge:
            return _FAULT_NAMES[name]
    return None


def fault_status(fault: str, provider: str, faults: FaultConfig) -> int:
    """The HTTP status a pre-admission fault answers with (0 for a fault that sends no status)."""
    if fault == "spurious_429":
        return 429
    if fault == "overload":
        return 529 if provider == "anthropic" else 503
    if fault == "server_error":
        return faults.error_status
    return 0
