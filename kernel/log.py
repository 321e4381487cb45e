"""Logging: structlog, JSON in production and console in a terminal, secrets masked everywhere.

The pipeline is a list of processors (structlog's model). :func:`mask_secrets` is one of them: it
walks every value of the event, including the rendered exception text, and masks anything that
looks like a key (see :mod:`kernel.masking`); a value logged under a credential's name
(``api_key=``, ``secret=``, ``authorization=`` ...) is masked whatever it looks like. Records from
the standard library (aiohttp, redis, boto3 ...) go through the same processors, so a third-party
message that echoes a header is masked too.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from kernel.env_file import ensure_env_file
from kernel.errors import ConfigError
from kernel.masking import mask_secret, redact

_configured = False

#: Event keys whose values are credentials whatever they look like (``key_id`` is not one).
_CREDENTIAL_NAME = re.compile(
    r"(?i)^(?:.*[_-])?(?:api[_-]?key|secret|secret[_-]?key|password|passwd|token|access[_-]?token"
    r"|authorization|auth[_-]?header|credentials?|x[_-]api[_-]key|x[_-]goog[_-]api[_-]key)$"
)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, MutableMapping):
        return {k: _mask_field(str(k), v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return [_mask_value(v) for v in value]
    if isinstance(value, list | tuple):
        return type(value)(_mask_value(v) for v in value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value


def mask_secrets(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Processor: mask secrets in every value of the event (exception text included)."""
    return {key: _mask_field(key, value) for key, value in event_dict.items()}


def _mask_field(name: str, value: Any) -> Any:
    if isinstance(value, str) and _CREDENTIAL_NAME.match(name):
        return mask_secret(value)
    return _mask_value(value)


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        mask_secrets,
    ]


def _wants_json(fmt: str | None) -> bool:
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "auto").lower()
    if fmt in ("json", "console"):
        return fmt == "json"
    return not sys.stderr.isatty()


def configure_logging(
    level: str | None = None, fmt: str | None = None, *, force: bool = False
) -> None:
    """Configure structlog and the standard library root logger once per process.

    ``fmt``: ``json``, ``console`` or ``auto`` (console on a terminal, JSON otherwise);
    defaults to ``LOG_FORMAT``. ``level`` defaults to ``LOG_LEVEL`` or INFO.
    """
    global _configured
    if _configured and not force:
        return
    with contextlib.suppress(ConfigError):  # a malformed .env: Settings.from_env() says where
        ensure_env_file()
    level_name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    # The console renderer prints the exception text format_exc_info rendered (and masked); its
    # own pretty formatter would re-render the traceback, unmasked and with local variables.
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if _wants_json(fmt)
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared = _shared_processors()
    structlog.configure(
        # filter_by_level first: an event below the level is dropped before any processor runs
        # (a debug call on the request path then costs a level check, not a rendered event)
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    _install_handler(formatter, level_name, force=force)
    _configured = True
    try:
        install_log_file(level_name)
    except ConfigError as exc:  # logging goes on without the file, saying why
        structlog.get_logger("kernel.log").error("log file not written", error=str(exc))


def _install_handler(formatter: logging.Formatter, level_name: str, *, force: bool) -> None:
    """Our stderr handler on the root logger. A library must not take over an application's
    logging: installed when asked to (command line, gateway) or when nobody configured the root
    logger (or when ours is already there: it is replaced)."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_llm_router", False)]
    if force or not root.handlers or ours:
        for old in ours:
            root.removeHandler(old)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        handler._llm_router = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(level_name)


def install_log_file(level_name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """With ``LOG_FILE`` set: the masked JSON log also goes to that file, rotated at
    ``LOG_FILE_MAX_BYTES`` keeping ``LOG_FILE_BACKUPS`` old files (``.1`` the newest), its
    directory created. An explicit setting: installed even when the application configured
    logging itself. Answers the file, or None when ``LOG_FILE`` is unset."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_llm_router_file", False)]:
        root.removeHandler(old)
        old.close()
    options = log_file_options(os.environ if environ is None else environ)
    if options is None:
        return None
    path, max_bytes, backups = options
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
    except OSError as exc:
        raise ConfigError(f"cannot open the log file: {exc.strerror}", field="LOG_FILE") from None
    handler.setFormatter(json_formatter())
    handler.setLevel(level_name)
    handler._llm_router_file = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    return path


def log_file_options(env: Mapping[str, str]) -> tuple[Path, int, int] | None:
    """(path, max bytes, backups) from ``LOG_FILE``, ``LOG_FILE_MAX_BYTES``, ``LOG_FILE_BACKUPS``
    (the defaults of kernel/settings.py), or None when LOG_FILE is unset."""
    name = env.get("LOG_FILE", "").strip()
    if not name:
        return None
    sizes = []
    limits = (("LOG_FILE_MAX_BYTES", 10 * 1024 * 1024, 1024), ("LOG_FILE_BACKUPS", 5, 0))
    for variable, default, low in limits:
        raw = env.get(variable, "").strip()
        try:
            value = int(raw) if raw else default
        except ValueError:
            raise ConfigError("expected an integer", source="environment", field=variable) from None
        if value < low:
            raise ConfigError(f"expected at least {low}", source="environment", field=variable)
        sizes.append(value)
    return Path(name.replace("{pid}", str(os.getpid()))), sizes[0], sizes[1]


def json_formatter() -> logging.Formatter:
    """A formatter rendering any record (ours or a library's) as masked JSON, for extra handlers
    (the test suite writes everything logged to a file and scans it for secrets)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structured logger; configures logging with the defaults on first use."""
    if not _configured:
        configure_logging()
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
