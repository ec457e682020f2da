"""Structured logging: one line per event, as logfmt text or JSON, with secrets redacted.

Theory of operation: code logs events, not sentences::

    log.event("conn.accepted", peer="127.0.0.1:5555", suite="national")
    log.warning("limits.conn_closed", peer=peer, reason="frame rate")

Each helper first asks the stdlib logger whether its level is enabled (the hot-path cost of a filtered
debug event is one method call), then redacts the fields and hands a LogRecord to stdlib logging, so
anything that configures stdlib logging (pytest's caplog, a systemd journal handler) sees the same records.
`configure()` installs one stderr handler on the root logger, so records of other libraries (asyncio's
"Task exception was never retrieved") come out in the same one-line format.

Redaction happens when the event is created, before any handler sees it: a field whose name contains one of
`SENSITIVE_WORDS` as an underscore- or dot-separated part (``secret``, ``app_secret``, ``ticket_id``) is
logged as "<redacted>", and bytes are never logged, only their length. Logs must never hold a secret, a key
or a message body.

Under systemd, stderr is a stream into journald, which reads a leading "<N>" as the line's syslog priority
(sd-daemon(3)): when $JOURNAL_STREAM names the stream being written to, each line gets that prefix (<3> error,
<4> warning, <6> info, <7> debug), so `journalctl -p warning -u kefu` filters by level. The line after the
prefix is unchanged (logfmt or JSON).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = [
    "REDACTED",
    "SENSITIVE_WORDS",
    "JournalPriorityFormatter",
    "JsonFormatter",
    "LogfmtFormatter",
    "RedactingFilter",
    "configure",
    "debug",
    "error",
    "event",
    "exception",
    "is_journal_stream",
    "redact",
    "set_context",
    "set_level",
    "syslog_priority",
    "warning",
]

LOGGER_NAME = "kefu"
REDACTED = "<redacted>"
SENSITIVE_WORDS = frozenset({"secret", "key", "private", "body", "password", "proof", "psk", "ticket"})
"""A field whose name has one of these as a part is never logged: it might be a secret, a key or a body."""

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

_FIELDS = "kefu_fields"
"""The LogRecord attribute holding an event's (redacted) fields."""
_PARTS = re.compile(r"[_.\-]")
_logger = logging.getLogger(LOGGER_NAME)


def _sensitive(name: str) -> bool:
    lowered = name.lower()
    return lowered in SENSITIVE_WORDS or any(part in SENSITIVE_WORDS for part in _PARTS.split(lowered))


def _scrub(value: object) -> object:
    match value:
        case bytes() | bytearray() | memoryview():
            return f"<{len(value)} bytes>"
        case Mapping():
            return redact(value)
        case BaseException():
            return f"{type(value).__name__}: {value}"
    return value


def redact(fields: Mapping[str, object]) -> dict[str, object]:
    """`fields` with sensitive names replaced by "<redacted>" and bytes by their length (nested mappings too)."""
    return {k: REDACTED if _sensitive(str(k)) else _scrub(v) for k, v in fields.items()}


class RedactingFilter(logging.Filter):
    """Redacts the fields of records that did not come through `event` (e.g. `logger.info(..., extra=...)`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, _FIELDS, None)
        if isinstance(fields, Mapping):
            setattr(record, _FIELDS, redact(fields))
        return True


# --- emitting -------------------------------------------------------------------------------------------


_context: dict[str, object] = {}
"""Fields added to every event of this process (the worker's name, in a server with worker processes)."""


def set_context(**fields: object) -> None:
    """Add `fields` to every event this process logs from now on (e.g. set_context(worker="gateway-1"))."""
    _context.update(fields)


def _emit(level: int, name: str, fields: dict[str, object], exc_info: bool = False) -> None:
    # makeRecord + handle rather than Logger.log: skips findCaller's stack walk, which the format never shows.
    if _context:
        fields = {**_context, **fields}
    record = _logger.makeRecord(
        LOGGER_NAME, level, "", 0, name, (), sys.exc_info() if exc_info else None, extra={_FIELDS: redact(fields)}
    )
    _logger.handle(record)


def event(name: str, /, **fields: object) -> None:
    """Log event `name` at INFO with `fields` (e.g. event("conn.accepted", peer="1.2.3.4:5", suite="national"))."""
    if _logger.isEnabledFor(logging.INFO):
        _emit(logging.INFO, name, fields)


def debug(name: str, /, **fields: object) -> None:
    """Log event `name` at DEBUG."""
    if _logger.isEnabledFor(logging.DEBUG):
        _emit(logging.DEBUG, name, fields)


def warning(name: str, /, **fields: object) -> None:
    """Log event `name` at WARNING."""
    if _logger.isEnabledFor(logging.WARNING):
        _emit(logging.WARNING, name, fields)


def error(name: str, /, **fields: object) -> None:
    """Log event `name` at ERROR."""
    if _logger.isEnabledFor(logging.ERROR):
        _emit(logging.ERROR, name, fields)


def exception(name: str, /, **fields: object) -> None:
    """Log event `name` at ERROR with the traceback of the exception being handled."""
    if _logger.isEnabledFor(logging.ERROR):
        _emit(logging.ERROR, name, fields, exc_info=True)


# --- formatting -----------------------------------------------------------------------------------------


def _timestamp(record: logging.LogRecord) -> str:
    secs = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{secs}.{int(record.msecs):03d}Z"


def _record_fields(record: logging.LogRecord) -> tuple[str, dict[str, object]]:
    """(event name, fields) of any record: ours carry fields; foreign ones become {"logger", "msg"}."""
    fields = getattr(record, _FIELDS, None)
    if isinstance(fields, dict):
        out = dict(fields)
        name = record.msg if isinstance(record.msg, str) else str(record.msg)
    else:
        out = {"logger": record.name, "msg": record.getMessage()}
        name = "log"
    if record.exc_info:
        out["traceback"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
    return name, out


_BARE = re.compile(r"[^\s=\"\\\x00-\x1f\x7f]+")


def logfmt_value(value: object) -> str:
    """A value in logfmt: bare when it can be, else double-quoted with \\, " and control characters escaped."""
    text = "true" if value is True else "false" if value is False else "" if value is None else str(value)
    if _BARE.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    """`ts level event key=value ...`, one line per record (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        name, fields = _record_fields(record)
        parts = [_timestamp(record), record.levelname.lower(), logfmt_value(name)]
        parts += [f"{k}={logfmt_value(v)}" for k, v in fields.items()]
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, then the fields (a field named like those gets a "_")."""

    def format(self, record: logging.LogRecord) -> str:
        name, fields = _record_fields(record)
        out: dict[str, Any] = {"ts": _timestamp(record), "level": record.levelname.lower(), "event": name}
        for k, v in fields.items():
            out[f"_{k}" if k in out else k] = v
        return json.dumps(out, ensure_ascii=False, default=str)


SYSLOG_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
"""(lowest stdlib level, syslog priority): crit, err, warning, info; anything below INFO is debug (7)."""
JOURNAL_STREAM_ENV = "JOURNAL_STREAM"


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a stdlib level (sd-daemon(3)'s <N> prefixes)."""
    return next((prio for lowest, prio in SYSLOG_PRIORITIES if levelno >= lowest), 7)


class JournalPriorityFormatter(logging.Formatter):
    """Another formatter's line, prefixed with "<N>", the syslog priority journald reads off a stream."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{self.inner.format(record)}"


def is_journal_stream(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Whether `stream` is the journald stream systemd named in $JOURNAL_STREAM ("device:inode")."""
    expected = (os.environ if env is None else env).get(JOURNAL_STREAM_ENV)
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


class _KefuHandler(logging.StreamHandler[TextIO]):
    """The handler `configure` installs; marked so reconfiguring replaces it rather than adding another."""


def configure(
    level: str = "info", *, json_lines: bool = False, stream: TextIO | None = None, journal: bool | None = None
) -> None:
    """Log events at `level` and above to `stream` (default stderr) as logfmt text or JSON lines.

    `journal`: prefix each line with its syslog priority for journald; None (the default) decides by
    $JOURNAL_STREAM, which systemd sets when the stream is connected to the journal.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _KefuHandler)]:
        root.removeHandler(handler)
    handler = _KefuHandler(stream if stream is not None else sys.stderr)
    formatter: logging.Formatter = JsonFormatter() if json_lines else LogfmtFormatter()
    if is_journal_stream(handler.stream) if journal is None else journal:
        formatter = JournalPriorityFormatter(formatter)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    """Change the level at run time (SIGHUP reload of [log] level)."""
    try:
        value = LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r} (one of: {', '.join(LEVELS)})") from None
    logging.getLogger().setLevel(value)
    _logger.setLevel(value)
