"""Where calls come from: the ``CallSource`` protocol (SIP, synthetic, ...).

A source offers calls to the worker (a ``CallSink``); the worker tells the source what
became of each call, so the source can answer the network:

* ``sink.offer(call)`` → False when the worker is full or draining; the worker has then
  already called ``source.reject(call, "busy")`` (SIP: answer 503).
* ``sink.remote_hangup(call_id, reason)``: the caller left (SIP: BYE received); the job's
  room sees a participant disconnect.
* ``call.job_event(name, data)``: the job tells the source something about the call
  (SIP: its RTP socket is open on a port → answer 200 OK).
* ``call.report_extra(outcome, report)``: once per accepted call, when its job ended,
  crashed or was killed: keys the source adds to the call's report before it is written
  (SIP: the signaling side of the ``"sip"`` block, ``ended_by`` among them).
* ``source.call_ended(call, outcome, report)``: then, once the report is written (SIP:
  send BYE if the caller is still there).

Every method of the sink and the callbacks into the source are synchronous and must not
block; ``run`` and ``aclose`` are async. The worker owns the task running ``run`` and
cancels it when it stops accepting calls for good.
"""

from __future__ import annotations

from typing import Any, Protocol

from voxlane.core.supervision import JobOutcome


class Call(Protocol):
    """One incoming call."""

    @property
    def call_id(self) -> str:
        """Unique among the worker's calls (becomes the job id and the report's file name)."""
        ...

    def job_spec(self) -> dict[str, Any]:
        """A JSON-able description the job process builds its room from (``"kind"`` key)."""
        ...

    def job_event(self, name: str, data: dict[str, Any]) -> None:
        """The job reported ``name`` (an IPC ``CallEvent``), e.g. SIP's ``"media_ready"``.
        Synchronous, must not block; calls that expect none ignore it."""
        ...

    def report_extra(self, outcome: JobOutcome, report: dict[str, Any]) -> dict[str, Any]:
        """Keys to add to the call's report (``report``: the job's report with the
        supervisor's block, not to be modified), just before it is written. Synchronous,
        must not block; an error here is logged and the report written without them."""
        ...


class CallSink(Protocol):
    """The worker, as a source sees it."""

    def offer(self, call: Call) -> bool:
        """Accept ``call`` (True) or reject it (False, after ``source.reject``)."""
        ...

    def remote_hangup(self, call_id: str, reason: str = "hangup") -> None:
        """The caller of ``call_id`` left. Unknown or ended calls are ignored."""
        ...


class CallSource(Protocol):
    async def run(self, sink: CallSink) -> None:
        """Offer calls to ``sink`` until cancelled. Returning means: no more calls. The
        worker is announced ready once this has taken its first step, so a source
        registers ``sink`` before its first await."""
        ...

    def reject(self, call: Call, reason: str) -> None:
        """``call`` was not accepted (``reason``: "busy" when full or draining)."""
        ...

    def call_ended(self, call: Call, outcome: JobOutcome, report: dict[str, Any]) -> None:
        """The job of an accepted call is over (its report is already written)."""
        ...

    async def aclose(self) -> None:
        """Release the source's resources (sockets, timers). Bounded by the caller."""
        ...
