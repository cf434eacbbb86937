"""``sip.ended_by`` of a worker's SIP call: the standalone server's words (docs/sip.md),
decided from the dialog's end, the job's outcome and its report (pure, table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from voxlane.core.supervision import JobOutcome
from voxlane.worker.sip_source import sip_ended_by

CLOSED, CRASHED, KILLED = JobOutcome.CLOSED, JobOutcome.CRASHED, JobOutcome.KILLED_AFTER_SIGTERM


def report(
    close: str = "participant_disconnected",
    room: str | None = None,
    requests: tuple[str, ...] = (),
    session: str | None = "sess_1",
) -> dict[str, Any]:
    return {
        "session_id": session,
        "close": {"reason": close},
        "sip": {"disconnect_reason": room},
        "supervisor": {"close_requests": list(requests)},
    }


CASES = [
    # the caller's side ends it first, whatever the job did then
    ("bye", CLOSED, report(room="hangup"), "caller_bye"),
    ("bye", KILLED, report(close="job_killed_after_sigterm", session=None), "caller_bye"),
    ("cancel", CLOSED, report(room="cancelled"), "cancel"),
    ("no_ack", CLOSED, report(room="timeout"), "no_ack"),
    ("weird", CLOSED, report(), "weird"),
    # the worker forced its jobs to close (drain timeout, second signal)
    (None, CLOSED, report(close="job_shutdown", requests=("job_shutdown",)), "server_shutdown"),
    (
        None,
        KILLED,
        report(close="job_killed_after_sigterm", requests=("job_shutdown",), session=None),
        "server_shutdown",
    ),
    # the job went wrong
    (None, CRASHED, report(close="job_crashed", session=None), "error"),
    (None, KILLED, report(close="job_killed_after_sigterm", session=None), "error"),
    (None, CLOSED, report(close="job_closed", session=None), "error"),  # could not run it
    # the job's room saw the end
    (None, CLOSED, report(room="timeout"), "rtp_timeout"),
    (None, CLOSED, report(room="room_closed"), "max_duration"),
    # the session closed by itself: the agent hung up
    (None, CLOSED, report(close="drained"), "agent_hangup"),
    (None, CLOSED, report(close="user_initiated"), "agent_hangup"),
]


@pytest.mark.parametrize(("dialog", "outcome", "job_report", "expected"), CASES)
def test_ended_by(
    dialog: str | None, outcome: JobOutcome, job_report: dict[str, Any], expected: str
) -> None:
    assert sip_ended_by(dialog, outcome, job_report) == expected


def test_the_vocabulary_is_the_standalone_servers() -> None:
    """Every word is one docs/sip.md (and runners/sip_server.py) uses."""
    words = {e for *_, e in CASES} - {"weird"}
    assert words <= {
        "caller_bye",
        "cancel",
        "no_ack",
        "rtp_timeout",
        "agent_hangup",
        "max_duration",
        "server_shutdown",
        "error",
        "rejected",
        "no_rtp_port",
    }
