"""Logging: one line per event, human-readable or JSON, tagged with the current context.

``log_context`` holds the id of the request or connection a task works for; Trio copies
context variables into child tasks, so every line logged on behalf of a request carries
its id without passing it around.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log_context: contextvars.ContextVar[str] = contextvars.ContextVar(
    "rtserver_log_context", default=""
)


def fields(**values: object) -> dict[str, Any]:
    """``extra=`` for a log call: ``values`` become fields of the JSON line (a text line
    keeps its message, which says the same in words). A name already in the line
    (``ts``, ``level``, ``logger``, ``msg``, ``ctx``) is not overwritten."""
    return {"fields": values}


@contextmanager
def logging_context(ident: str) -> Iterator[None]:
    """Tag every log line emitted inside the block (and its child tasks) with ``ident``."""
    token = log_context.set(ident)
    try:
        yield
    finally:
        log_context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.ctx = log_context.get()
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ctx = getattr(record, "ctx", "")
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<7} {record.name}"
        if ctx:
            line += f" [{ctx}]"
        line += f" {record.getMessage()}"
        if record.exc_info:
            # Tracebacks are the one multi-line exception: they are what a crash report needs.
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ctx = getattr(record, "ctx", "")
        if ctx:
            entry["ctx"] = ctx
        for name, value in (getattr(record, "fields", None) or {}).items():
            entry.setdefault(name, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(fmt: str = "text", level: str = "info", *, libraries: bool = False) -> None:
    """Send log records to stderr in ``fmt`` ("text" or "json"): rtserver's from ``level``
    up, other libraries' from warning up unless ``libraries`` (then from ``level`` too).

    Libraries are quiet by default because their debug output drowns rtserver's (the
    HTTP client alone logs every connection step of every chain poll).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if libraries else logging.WARNING)
    logging.getLogger("rtserver").setLevel(level.upper())
    # Hypercorn logs each request itself; rtserver's own access line carries the id instead.
    for noisy in ("hypercorn.access", "hypercorn.error", "quart.app", "quart.serving"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
