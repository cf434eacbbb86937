"""JSON-lines logging: one object per line, with job and session ids."""

from __future__ import annotations

import json
import logging

from voxlane.worker.logs import JobIdsFilter, JsonLogFormatter


def test_json_lines_carry_ids() -> None:
    ids = JobIdsFilter()
    ids.job_id, ids.session_id = "call_1", "sess_1"
    record = logging.LogRecord(
        "voxlane.x", logging.INFO, __file__, 1, "closed in %d ms", (3,), None
    )
    ids.filter(record)
    obj = json.loads(JsonLogFormatter().format(record))
    assert obj["msg"] == "closed in 3 ms"
    assert obj["job_id"] == "call_1" and obj["session_id"] == "sess_1"
    assert obj["level"] == "INFO" and obj["ts"].endswith("Z")


def test_explicit_extra_wins() -> None:
    ids = JobIdsFilter()
    ids.job_id = "a"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    record.job_id = "b"
    ids.filter(record)
    assert json.loads(JsonLogFormatter().format(record))["job_id"] == "b"
