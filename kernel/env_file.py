"""A ``.env`` file read at start (documents 003/004's ``.env``), never over the real environment.

    ROUTER_ENV_FILE=/etc/llm-router/env python -m router serve   # or ./.env in the working dir

The file is read once per process, at the first of: the command line's start, the first settings
read from the environment (``Settings.from_env()``: a ``RequestRouter``, a ``KeyManager``), the
logging set-up. Each ``NAME=value`` line sets ``NAME`` only when the environment does not hold it
already (a variable set in the real environment, even to an empty value, wins). The format is the
common one (python-dotenv, docker compose)::

    # a comment
    export OPENAI_API_KEYS=sk-one,sk-two      # ``export`` is allowed; an inline comment too
    REDIS_URL="redis://localhost:6379/0"      # quotes are removed ("..." knows \\n \\" \\\\)
    LOG_FILE='logs/llm_router.log'            # '...' is taken as written

A line that is none of these (no ``=``, a name that is not a variable name, an unclosed quote)
stops the start with a :class:`~kernel.errors.ConfigError` naming the file and the line number
(never the line's text: it may hold a secret). ``ROUTER_ENV_FILE`` naming a missing file is an
error too; a missing ``./.env`` is not.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import MutableMapping
from pathlib import Path

from kernel.errors import ConfigError

#: The variable naming the file; unset: ``.env`` in the working directory.
ENV_FILE_VARIABLE = "ROUTER_ENV_FILE"
DEFAULT_ENV_FILE = ".env"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}

_lock = threading.Lock()
_loaded = False


def parse_env_file(text: str, source: str) -> dict[str, str]:
    """The variables of a ``.env`` text, in order; a malformed line raises ConfigError."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parsed = _parse_line(line)
        if isinstance(parsed, str):
            raise ConfigError(parsed, source=f"{source}, line {number}")
        values[parsed[0]] = parsed[1]
    return values


def _parse_line(line: str) -> tuple[str, str] | str:
    """(name, value), or what is wrong with the line."""
    if line.startswith("export ") or line.startswith("export\t"):
        line = line[len("export") :].lstrip()
    name, sep, rest = line.partition("=")
    name = name.strip()
    if not sep:
        return "expected NAME=value (no '=' on the line)"
    if not _NAME.match(name):
        return (
            "expected NAME=value where NAME is letters, digits and '_' (not starting with a digit)"
        )
    return _value(rest.strip(), name)


def _value(rest: str, name: str) -> tuple[str, str] | str:
    if not rest or rest[0] not in "\"'":
        # unquoted: up to an inline comment (`` #``)
        return name, re.split(r"\s+#", rest, maxsplit=1)[0].rstrip()
    quote = rest[0]
    out: list[str] = []
    i = 1
    while i < len(rest):
        ch = rest[i]
        if ch == "\\" and quote == '"' and i + 1 < len(rest):
            out.append(_ESCAPES.get(rest[i + 1], "\\" + rest[i + 1]))
            i += 2
            continue
        if ch == quote:
            tail = rest[i + 1 :].strip()
            if tail and not tail.startswith("#"):
                return f"unexpected text after the closing quote of {name}"
            return name, "".join(out)
        out.append(ch)
        i += 1
    return f"unclosed {quote} quote in the value of {name}"


def env_file_path(environ: MutableMapping[str, str] | None = None) -> tuple[Path, bool]:
    """(the file to read, whether it was named explicitly by ROUTER_ENV_FILE)."""
    env = os.environ if environ is None else environ
    named = env.get(ENV_FILE_VARIABLE, "").strip()
    return (Path(named), True) if named else (Path(DEFAULT_ENV_FILE), False)


def load_env_file(environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Read the ``.env`` file into ``environ`` (default ``os.environ``) without overriding what it
    holds. Answers the file read, or None when there is none (``./.env`` missing)."""
    env = os.environ if environ is None else environ
    path, explicit = env_file_path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError("file not found", source=str(path), field=ENV_FILE_VARIABLE) from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {type(exc).__name__}", source=str(path)) from None
    for name, value in parse_env_file(text, str(path)).items():
        env.setdefault(name, value)
    return path


def ensure_env_file() -> None:
    """:func:`load_env_file` into ``os.environ`` once per process (later calls do nothing)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            load_env_file()  # a malformed file raises here, and again at the next call
            _loaded = True


def reset_env_file() -> None:
    """Let the next :func:`ensure_env_file` read the file again (tests)."""
    global _loaded
    _loaded = False
