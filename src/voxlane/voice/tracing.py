"""OpenTelemetry spans for a session, its turns and its close — when OpenTelemetry is there.

:func:`trace_session` subscribes to a session's events and records, through the global
tracer provider (or the one given), one ``voxlane.session`` span (start → close event) with
a child ``voxlane.turn`` span per answered user turn (end of user speech → first reply
audio, with each stage's duration as an attribute) and a ``voxlane.close`` span (close
request → close event, with its reason, steps, escalations, abandoned tasks and the
connections still open). Spans carry ids, reasons and durations, never transcripts or
prompts (DESIGN I7).

Without ``opentelemetry-api`` installed (the ``otel`` extra), :func:`trace_session` does
nothing and returns None; with the API but no SDK configured, spans are no-ops. Spans are
built after the fact from the session's loop-clock timestamps, so recording one never
waits and never touches the session's tasks.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from voxlane.aio.clock import Clock
from voxlane.voice.api import SessionAPI
from voxlane.voice.events import CloseEvent
from voxlane.voice.metrics import TurnMetrics

__all__ = ["SessionTracer", "otel_available", "trace_session"]

TRACER_NAME = "voxlane"


def otel_available() -> bool:
    """Whether ``opentelemetry-api`` can be imported."""
    return importlib.util.find_spec("opentelemetry") is not None


class SessionTracer:
    """The spans of one session (see the module docstring). Made by :func:`trace_session`."""

    def __init__(self, session: SessionAPI[Any], tracer: Any, clock: Clock) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = tracer
        self._clock = clock
        # Loop-clock seconds → wall-clock nanoseconds (OpenTelemetry's time base).
        self._offset_ns = time.time_ns() - int(clock.now() * 1e9)
        self._session_id = session.id
        self.turns = 0
        self.span = tracer.start_span(
            "voxlane.session",
            start_time=self._ns(clock.now()),
            attributes={"voxlane.session_id": session.id},
        )
        self._context = trace.set_span_in_context(self.span)
        session.on("turn_metrics", self._on_turn)
        session.on("close", self._on_close)

    def _ns(self, loop_time: float) -> int:
        return self._offset_ns + int(loop_time * 1e9)

    def _on_turn(self, metrics: TurnMetrics) -> None:
        start = metrics.speech_ended_at or metrics.committed_at
        end = metrics.first_audio_at
        if start is None or end is None or not self.span.is_recording():
            return
        self.turns += 1
        attributes: dict[str, Any] = {
            "voxlane.session_id": self._session_id,
            "voxlane.turn": self.turns,
        }
        attributes.update({f"voxlane.{k}_ms": round(v, 3) for k, v in metrics.parts_ms().items()})
        span = self._tracer.start_span(
            "voxlane.turn", context=self._context, start_time=self._ns(start),
            attributes=attributes,
        )
        span.end(end_time=self._ns(end))

    def _on_close(self, event: CloseEvent) -> None:
        if not self.span.is_recording():  # no SDK configured (or not sampled): no work
            self.span.end()
            return
        report = event.report
        now = self._clock.now()
        attributes: dict[str, Any] = {
            "voxlane.session_id": self._session_id,
            "voxlane.close.reason": event.reason.value,
            "voxlane.close.duration_ms": round(report.duration_ms, 3),
            "voxlane.close.escalations": len(report.escalations),
            "voxlane.close.abandoned": len(report.abandoned),
            "voxlane.close.open_connections_after": report.open_connections_after,
        }
        if report.error:
            attributes["voxlane.close.error"] = report.error
        close = self._tracer.start_span(
            "voxlane.close", context=self._context,
            start_time=self._ns(now - report.duration_ms / 1000), attributes=attributes,
        )
        for step in report.steps:
            close.add_event(
                f"step {step.name}",
                {"outcome": step.outcome, "duration_ms": round(step.duration_ms, 3)},
            )
        failed = event.error is not None or report.open_connections_after > 0
        if failed:
            close.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        close.end(end_time=self._ns(now))
        self.span.set_attribute("voxlane.close.reason", event.reason.value)
        self.span.set_attribute("voxlane.turns", self.turns)
        if failed:
            self.span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        self.span.end(end_time=self._ns(now))


def trace_session(
    session: SessionAPI[Any], *, tracer_provider: Any = None, clock: Clock | None = None
) -> SessionTracer | None:
    """Record the session's spans (see the module docstring); None without OpenTelemetry.
    Call before the session starts; the spans end with its ``close`` event."""
    if not otel_available():
        return None
    from opentelemetry import trace

    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
    return SessionTracer(session, tracer, clock or session.clock)
