"""Structured logs: one JSON object per line on stderr, for our own events (structlog) and for
every stdlib ``logging`` call (uvicorn's, the libraries', the use cases') alike.

``ige serve`` / ``ige demo`` configure it once (``configure``), and hand uvicorn the same
``dict_config`` so that its worker processes (spawned, not forked) configure themselves the same
way. Each line has ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``, ``pid``, ``event`` and,
while a request is handled, its ``request_id``; the rest are the event's own keys.

The privacy rule: a line carries ids and numbers, never a secret or personal data (tokens,
client secrets, stream tickets, passwords, TOTP secrets or codes, national ids, tax ids,
e-mails, phones, names, offer conditions), never a request body and never a query string.
Foreign lines are guarded too: uvicorn's WebSocket handshake lines (which carry the URL with its
``?ticket=`` and the client's address) are dropped, and anything that looks like a query string
in a foreign message is cut (``redact_query``).

Without ``configure`` (tests that build the app in-process) the loggers are plain stdlib
loggers: nothing is printed unless the test's logging says so.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import logging.config
import os
import re
import time
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import orjson
import structlog
from structlog.stdlib import BoundLogger, ProcessorFormatter
from structlog.typing import EventDict, WrappedLogger

#: the levels IGE_LOG_LEVEL accepts
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: the request (or WebSocket connection) being handled in this context; set by the request
#: middleware, added to every line logged while it runs
REQUEST_ID: ContextVar[str | None] = ContextVar("ige_request_id", default=None)

_QUERY = re.compile(r"\?[^\s\"']+")
_FIRST = ("timestamp", "level", "logger", "pid", "event", "request_id")


def get_logger(name: str) -> BoundLogger:
    """A structlog logger over the stdlib logger ``name``: ``log.info("event", key=value)``.
    Independent of structlog's global configuration: what the line becomes is the stdlib
    handler's business (``configure``)."""
    return BoundLogger(logging.getLogger(name),
                       [structlog.stdlib.filter_by_level, ProcessorFormatter.wrap_for_formatter],
                       {})


def level_of(value: str | None) -> str:
    """IGE_LOG_LEVEL as a level name (default INFO); ValueError for anything else."""
    name = (value or "INFO").strip().upper()
    if name not in LEVELS:
        raise ValueError(f"IGE_LOG_LEVEL must be one of {', '.join(LEVELS)}, not {value!r}")
    return name


# ----------------------------------------------------------------------------- processors
def add_request_id(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    rid = REQUEST_ID.get()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


def add_pid(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """The process (``ige serve --workers N`` runs N of them)."""
    event["pid"] = os.getpid()
    return event


def redact_query(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """A foreign line (not ours) loses anything that looks like a query string."""
    msg = event.get("event")
    if isinstance(msg, str) and "?" in msg:
        event["event"] = _QUERY.sub("?[redacted]", msg)
    return event


def ordered(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """The common keys first, for people reading the lines."""
    out = {k: event.pop(k) for k in _FIRST if k in event}
    out.update(event)
    return out


class DropWebSocketAccess(logging.Filter):
    """uvicorn's per-handshake lines ('<client> - "WebSocket /v1/stream?ticket=..." ...')
    carry the query string and the client's address; the hub logs ``stream_closed``
    instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("uvicorn")
                    and isinstance(record.msg, str) and '"WebSocket ' in record.msg)


class QuietClientFaults(logging.Filter):
    """A client's text frame that is not UTF-8 is the client's fault, not the server's: uvicorn
    closes the connection with 1007 and logs it at ERROR with a traceback, which any client
    could then write into the log at will. The record is kept as one INFO line without the
    traceback (the hub's ``stream_closed`` line says ``close_code: 1007``)."""

    MESSAGES = frozenset({"Invalid UTF-8 sequence received from client."})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn") and record.msg in self.MESSAGES:
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def json_formatter(process_wide: bool = False) -> ProcessorFormatter:
    """The one formatter (dictConfig's ``()`` factory): structlog's event dicts and foreign
    stdlib records alike become one JSON object per line. ``process_wide`` (as ``dict_config``
    asks, in every process that applies it, uvicorn's workers too): also turn
    ``warnings.warn`` into lines, and stop the stdlib collecting what no line shows."""
    if process_wide:
        logging.captureWarnings(True)
        _lean_records()
    return ProcessorFormatter(
        foreign_pre_chain=[redact_query],
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            add_pid,
            add_request_id,
            ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            ordered,
            structlog.processors.JSONRenderer(serializer=_json),
        ])


def _json(obj: Any, **_kw: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def dict_config(level: str) -> dict[str, Any]:
    """The logging configuration of a server process (also uvicorn's ``log_config``: its
    spawned worker processes apply it themselves)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "gateway.logs.json_formatter", "process_wide": True}},
        "filters": {"no_ws_access": {"()": "gateway.logs.DropWebSocketAccess"},
                    "client_faults": {"()": "gateway.logs.QuietClientFaults"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "json",
                                "filters": ["no_ws_access", "client_faults"]}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's own loggers propagate to the root's handler, at the root's level set
            # on them: uvicorn formats a trace line for every connection made and lost when
            # its logger's own level is NOTSET (0, "below" TRACE), only for the root to drop it
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "alembic": {"level": "WARNING"},
        },
    }


def configure(level: str) -> None:
    """JSON lines on stderr for this process (``level``: one of ``LEVELS``)."""
    logging.config.dictConfig(dict_config(level))
    LINES.on = True
    LINES.pid = os.getpid()


# ----------------------------------------------------------------------------- request lines
class Lines:
    """The request lines: the busiest lines by far (one per request), written without the
    stdlib's machinery, in the formatter's very format: the JSON object built here and
    rendered by orjson, the lines of one turn of the event loop gathered and written to
    stderr with one system call. On only once ``configure`` ran (a server process); else the
    lines go the ordinary way (``log``)."""

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self.on = False
        self._out: list[bytes] = []
        self.pid = os.getpid()

    def request(self, fields: dict[str, object]) -> None:
        now = time.time()
        seconds = int(now)
        line: dict[str, object] = {
            "timestamp": f"{_iso_second(seconds)}.{int((now - seconds) * 1e6):06d}Z",
            "level": "info", "logger": "ige.http", "pid": self.pid, "event": "request"}
        rid = REQUEST_ID.get()
        if rid is not None:
            line["request_id"] = rid
        line.update(fields)
        if not self._out:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: write now
                self._out.append(orjson.dumps(line) + b"\n")
                self.flush()
                return
        self._out.append(orjson.dumps(line) + b"\n")

    def flush(self) -> None:
        out, self._out = self._out, []
        data = b"".join(out)
        while data:
            try:
                n = os.write(self.fd, data)
            except OSError:
                return  # stderr is gone: nothing to tell anyone
            data = data[n:]


LINES = Lines()
atexit.register(LINES.flush)


@lru_cache(maxsize=64)
def _iso_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _lean_records() -> None:
    """A line carries no caller, thread or process fields: the stdlib need not collect them
    (the logging HOWTO's "Optimization"; the caller's frame alone was a fifth of a request
    line's cost)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
