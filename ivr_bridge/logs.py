"""structlog setup: console or JSON lines, with secrets scrubbed as a last line of defence.

Call context (call_sid, stream_sid) is bound with ``structlog.contextvars`` by the media handler,
so every line a call produces carries it without each module passing it around.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(r"(api[_-]?key|auth[_-]?token|password|secret|authorization)", re.I)
_REDACTED = "[redacted]"


def _scrub_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace values of secret-looking keys; modules should never pass them, this catches slips."""
    for key in list(event_dict):
        if _SECRET_KEYS.search(key):
            event_dict[key] = _REDACTED
    return event_dict


def configure_logging(
    fmt: str = "console", level: str = "info", stream: TextIO | None = None
) -> None:
    out = stream or sys.stderr
    level_no = logging.getLevelName(level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _scrub_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries that use stdlib logging (aiohttp access log, websockets) stay quiet unless warning.
    logging.basicConfig(level=max(level_no, logging.WARNING), stream=sys.stderr)
