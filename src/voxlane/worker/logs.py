"""Logging for the worker and its job processes: text or JSON lines.

JSON lines carry ``job_id`` and ``session_id``: passed with ``extra=`` or, in a job process,
added to every record by :class:`JobIdsFilter`. Nothing here logs transcripts: voxlane logs
ids, outcomes and timings at INFO; conversation text lives in the reports.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and ``job_id``/``session_id``
    when the record carries them (``extra=``). Messages never carry transcripts at INFO:
    the worker logs ids, outcomes and timings only."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("job_id", "session_id", "outcome", "pid"):
            value = getattr(record, key, None)
            if value is not None:
                obj[key] = value
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj)


class JobIdsFilter(logging.Filter):
    """Adds this process's job and session ids to records that do not carry them."""

    def __init__(self) -> None:
        super().__init__()
        self.job_id: str | None = None
        self.session_id: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = self.job_id
        if getattr(record, "session_id", None) is None:
            record.session_id = self.session_id
        return True


#: Loggers kept at WARNING or above whatever the level asked for: at DEBUG websockets logs
#: every request line and header (``Authorization: Bearer KEY``) and every text frame
#: (``session.create`` phrases, transcripts, text to speak), on the gateway's side and on
#: its clients'. voxlane.gateway.cli keeps the same list (the gateway may not import this).
QUIET_LOGGERS = ("websockets", "websockets.client", "websockets.server")


def quiet_websockets() -> None:
    """Raise the :data:`QUIET_LOGGERS` to WARNING (never lowers a level set higher)."""
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (0) included: it would inherit DEBUG
            logger.setLevel(logging.WARNING)


def setup_logging(level: str, fmt: str, ids: JobIdsFilter | None = None) -> None:
    """Log to stderr as ``fmt`` ("text" or "json") at ``level`` (websockets: WARNING at
    least, see :func:`quiet_websockets`)."""
    handler = logging.StreamHandler()
    if ids is not None:
        handler.addFilter(ids)
    if fmt == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_websockets()
