"""Free text that goes into records, logs and headers: refused when it holds control characters.

Operators' and clients' free text (a cooldown reason, a key's tags, a virtual key's name) ends up in
Redis records, log lines and status answers. A tab or a newline there once corrupted a key's health
record (tab-separated), so every entry point refuses C0 and C1 control characters and DEL with an
error naming the field; the record encoder (lua/records.py) keeps records well-formed regardless.
"""

from __future__ import annotations

import re

from kernel.errors import ClientRequestError, ConfigError

#: C0 controls (tab and newline included), DEL and the C1 controls.
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")


def control_char_problem(value: str) -> str | None:
    """Why ``value`` is refused ("contains the control character U+0009"), or None when plain."""
    found = CONTROL_CHARS.search(value)
    if found is None:
        return None
    return f"contains the control character U+{ord(found.group()):04X}"


def check_plain(value: str, field: str) -> str:
    """``value`` when it holds no control character, else a ClientRequestError naming ``field``."""
    problem = control_char_problem(value)
    if problem is not None:
        raise ClientRequestError(f"{field}: {problem}", field)
    return value


def check_plain_config(value: str, field: str, entry: str | None = None) -> str:
    """As :func:`check_plain` for the Python API: a ConfigError naming ``field``."""
    problem = control_char_problem(value)
    if problem is not None:
        raise ConfigError(problem, entry=entry, field=field)
    return value
