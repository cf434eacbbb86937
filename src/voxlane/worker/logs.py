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


def setup_logging(level: str, fmt: str, ids: JobIdsFilter | None = None) -> None:
    """Log to stderr as ``fmt`` ("text" or "json") at ``level``."""
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
