"""The teardown report (DESIGN I7) and the one-JSON-object session report (DESIGN §8)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voxlane.aio.closing import StepReport
from voxlane.aio.tasks import AbandonedTask
from voxlane.chat import ChatMessage
from voxlane.core.states import CloseReason


@dataclass(frozen=True)
class HookError:
    """An error user code (a hook, a tool) or a provider raised during the session."""

    source: str
    error: str
    fatal: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "error": self.error, "fatal": self.fatal}


@dataclass(frozen=True)
class Undelivered:
    """Speech that was queued and never started: its agent ended first."""

    speech_id: str
    agent: str
    text: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"speech": self.speech_id, "agent": self.agent, "text": self.text}


@dataclass
class TeardownReport:
    """How one close went: every step, every escalation, what was abandoned, what is open."""

    reason: CloseReason
    error: str | None = None
    duration_ms: float = 0.0
    steps: list[StepReport] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    abandoned: list[AbandonedTask] = field(default_factory=list)
    listener_errors: list[str] = field(default_factory=list)
    errors: list[HookError] = field(default_factory=list)
    """Every error of a hook, tool or provider during the session (also sent as ``error``)."""
    undelivered: list[Undelivered] = field(default_factory=list)
    open_connections_after: int = 0

    def add_step(self, step: StepReport, *, abandoned: bool = True) -> None:
        """Record a step (and, with ``abandoned``, the tasks it abandoned)."""
        self.steps.append(step)
        if abandoned:
            self.abandoned.extend(step.abandoned)
        if step.outcome in ("timeout", "aborted"):
            self.escalations.append(f"{step.name}: {step.outcome}")

    def to_dict(self) -> dict[str, Any]:
        """The ``close`` object of the DESIGN §8 session report."""
        return {
            "reason": self.reason.value,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
            "steps": [s.to_dict() for s in self.steps],
            "escalations": list(self.escalations),
            "abandoned": [a.to_dict() for a in self.abandoned],
            "listener_errors": list(self.listener_errors),
            "errors": [e.to_dict() for e in self.errors],
            "undelivered": [u.to_dict() for u in self.undelivered],
            "open_connections_after": self.open_connections_after,
        }

    def summary(self) -> str:
        lines = [
            f"close: {self.reason.value} in {self.duration_ms:.1f} ms"
            + (f" (error: {self.error})" if self.error else ""),
        ]
        for s in self.steps:
            lines.append(f"  {s.name:<28} {s.duration_ms:8.1f} ms  {s.outcome}")
        for a in self.abandoned:
            where = a.stack[-1] if a.stack else "?"
            lines.append(f"  abandoned {a.name} at {where}")
        for e in self.errors:
            lines.append(f"  error in {e.source}: {e.error}")
        for u in self.undelivered:
            lines.append(f"  undelivered {u.speech_id} ({u.agent}): {u.text or '(reply)'}")
        lines.append(f"  open connections after close: {self.open_connections_after}")
        return "\n".join(lines)


@dataclass
class Usage:
    stt_audio_s: float = 0.0
    tts_chars: int = 0
    llm_turns: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "stt_audio_s": round(self.stt_audio_s, 3),
            "tts_chars": self.tts_chars,
            "llm_turns": self.llm_turns,
        }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def session_report(
    *,
    session_id: str,
    started_at: float,
    ended_at: float,
    teardown: TeardownReport,
    history: list[ChatMessage],
    usage: Usage,
) -> dict[str, Any]:
    """The DESIGN §8 object. ``started_at``/``ended_at`` are wall-clock labels (epoch s)."""
    return {
        "session_id": session_id,
        "started_at": iso(started_at),
        "ended_at": iso(ended_at),
        "close": teardown.to_dict(),
        "history": [m.to_report() for m in history if m.role != "system"],
        "usage": usage.to_dict(),
    }


REPORT_MODE = 0o600
"""The default file mode of reports: they hold transcripts, so only their owner reads
them (the runners take a ``report_mode``; the CLI's ``--report-mode``)."""


_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._@+=-]")
_MAX_NAME_CHARS = 200  # + ".json": within every file system's NAME_MAX (255)


def report_file_name(call_id: str) -> str:
    """The report file name of a call: ``<call-id>.json`` with every character but
    ``A-Za-z0-9._@+=-`` replaced by ``_`` and at most 200 of them kept. A call id comes
    from the network (a SIP Call-ID may hold ``/`` and ``..``); the report must land inside
    the reports directory. Every runner that names a report after a call uses this
    (``voxlane sip``, the worker). Pure; never raises."""
    return f"{_UNSAFE_IN_FILE_NAME.sub('_', call_id)[:_MAX_NAME_CHARS]}.json"


def write_json_durably(path: Path, obj: dict[str, Any], *, mode: int = REPORT_MODE) -> None:
    """Write, fsync, atomically rename: a reader sees the old file or the whole new one.
    The file gets exactly ``mode`` (default 0600: owner only), whatever the umask, before
    it appears at ``path``; missing parent directories are made (umask applies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp made it 0600: widened only when asked
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
