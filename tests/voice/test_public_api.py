"""AgentSession's public surface is the DESIGN §4 API, its events and read-only state; the
wiring lives in a private runtime (issue #9). A new public name is a decision: add it here."""

from __future__ import annotations

from voxlane import AgentSession

PUBLIC = {
    # DESIGN §4
    "start", "say", "generate_reply", "interrupt", "update_agent", "shutdown", "aclose",
    "wait_closed", "on", "off",
    # read-only state
    "id", "userdata", "state", "agent_state", "user_state", "current_agent", "history",
    "usage", "clock", "stt", "llm", "tts", "close_timeout", "close_event", "started_at",
    "ended_at", "tracing", "report_dict",
    # the context its tasks run in (a job runner makes its job context current there)
    "task_context",
}  # fmt: skip


def test_agent_session_exposes_only_the_public_api() -> None:
    session = AgentSession()
    assert {n for n in dir(session) if not n.startswith("_")} == PUBLIC

