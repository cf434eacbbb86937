"""SIP calls for the worker: signaling stays here, each answered call runs in a job process.

A call's life, between this source (worker process) and its job (:mod:`.sip_job`)::

    INVITE ─▶ 100 Trying (the core: it has refused, statelessly, 400/488, an SDP offer no
           call can come of) ─▶ SDP negotiated
           ─▶ sink.offer(call) ── False ─▶ reject(call, "busy") ─▶ 503
                              └─ True: the worker starts the job with job_spec()
    job: RTP socket opened ─▶ CallEvent("media_ready", {"port"}) ─▶ 200 OK with our SDP
    BYE / CANCEL from the caller ─▶ sink.remote_hangup ─▶ the job's room: participant left
    job ended, crashed or was killed ─▶ report_extra: the report's "sip" block gets the
        signaling side (ended_by, ...) ─▶ report written ─▶ call_ended ─▶ BYE (answered)
        or 500/503 (not yet)

The job owns the RTP socket, so a job that is killed takes its media with it (the OS closes
the socket); the worker still hangs up the caller. Everything SIP decides happens in the
pure :class:`~voxlane.transports.sip.endpoint.SipEndpointCore`; this module carries it out.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.core.supervision import JobOutcome
from voxlane.transports.sip.common import DialogConfig
from voxlane.transports.sip.dialog import (
    CallConfirmed,
    CallOffered,
    CallTerminated,
    DialogNotification,
)
from voxlane.transports.sip.endpoint import EndpointConfig, SipEndpointCore
from voxlane.transports.sip.errors import (
    DialogStateError,
    SdpError,
    SdpNotAcceptableError,
    SipParseError,
    UnknownCallError,
)
from voxlane.transports.sip.headers import parse_uri
from voxlane.transports.sip.sdp import AudioNegotiation, build_answer, negotiate, parse_sdp
from voxlane.transports.sip.udp import SipSignaling, open_sip_signaling
from voxlane.worker.source import Call, CallSink

__all__ = ["SipCall", "SipCallSource", "SipSourceConfig"]

log = logging.getLogger("voxlane.worker.sip")

# What the caller's end of the dialog means for the job's room (DisconnectReason values).
# A missing ACK means the caller vanished (or never existed: a spoofed INVITE).
_HANGUP_REASONS = {"bye": "hangup", "cancel": "cancelled", "no_ack": "timeout"}
RECENT = 1000
# Reasons the worker gives for turning a call away that mean "try again later" (503).
_RETRY_LATER = {"busy", "starting"}

# sip.ended_by, the vocabulary of the standalone SIP server (runners/sip_server.py):
# the dialog's end, when the caller (or the lack of an ACK) ended it ...
_DIALOG_ENDED_BY = {
    "bye": "caller_bye",
    "cancel": "cancel",
    "no_ack": "no_ack",
}
# ... else what the job's room saw (DisconnectReason values the job side sets itself).
_ROOM_ENDED_BY = {"timeout": "rtp_timeout", "room_closed": "max_duration"}


def sip_ended_by(dialog_reason: str | None, outcome: JobOutcome, report: dict[str, Any]) -> str:
    """Who ended a worker's SIP call, in the words of ``voxlane sip``'s reports: the
    caller's BYE/CANCEL or a missing ACK (``dialog_reason``, the core's reason) first;
    then the worker forcing its jobs (``server_shutdown``); a job that crashed or was
    killed (``error``); the job's room (``rtp_timeout``, ``max_duration``); a job that
    could not run the call (``error``); else the session closed by itself
    (``agent_hangup``). Pure."""
    if dialog_reason is not None:
        return _DIALOG_ENDED_BY.get(dialog_reason, dialog_reason)
    close = report.get("close") or {}
    requests = (report.get("supervisor") or {}).get("close_requests") or []
    if "job_shutdown" in requests or close.get("reason") == "job_shutdown":
        return "server_shutdown"
    if outcome is not JobOutcome.CLOSED:
        return "error"
    room = (report.get("sip") or {}).get("disconnect_reason")
    if room in _ROOM_ENDED_BY:
        return _ROOM_ENDED_BY[room]
    if report.get("session_id") is None:
        return "error"  # the job could not run the call (no RTP port, a bad spec, ...)
    return "agent_hangup"


@dataclass(frozen=True, kw_only=True)
class SipSourceConfig:
    """``host`` is bound and advertised (Via, Contact, SDP); ``port`` 0 = ephemeral.
    ``rtp_port_range`` (inclusive, even ports) is where job processes bind their RTP
    sockets (None: ephemeral). ``max_dialogs`` bounds the signaling core: the dialogs it
    keeps in all, active or ended and absorbing retransmissions (503 beyond); the worker's
    ``max_jobs`` decides who is answered. ``llm`` and ``providers`` reach the job's
    session (``"fake"``: the testing kit's energy-based fakes, ``llm`` their script;
    ``"local"``: real engines behind the ``stack`` URLs;
    ``scripts`` maps a dialed user part to its own script). The job's ``JobContext.metadata``
    is ``metadata`` plus ``sip_to_user`` (the dialed number or name) and ``sip_from``."""

    host: str = "127.0.0.1"
    port: int = 5060
    allowed_sources: tuple[str, ...] | None = None
    rtp_port_range: tuple[int, int] | None = None
    rtp_timeout_s: float = 10.0
    close_timeout: float = 4.0
    max_call_s: float = 4 * 3600.0
    max_dialogs: int = 1000
    retry_after_s: int = 5
    providers: str = "fake"
    stack: dict[str, str | None] | None = None
    """With ``providers="local"``: ``gateway_url``, ``api_key``, ``llm_base_url`` of the
    local stack the worker runs (see ``voxlane.runners.stack``)."""
    llm: tuple[dict[str, Any], ...] | None = None
    scripts: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    t1: float = 0.5


class SipCall:
    """One offered SIP call (implements ``Call``)."""

    def __init__(
        self, source: SipCallSource, offer: CallOffered, negotiation: AudioNegotiation
    ) -> None:
        self._source = source
        self.offer = offer
        self.negotiation = negotiation
        self.offered_at = source.clock.now()
        self.confirmed_at: float | None = None
        self.answered = False
        self.terminated: str | None = None
        """The dialog's end as the core reported it (``bye``, ``cancel``, ...), or None."""

    @property
    def call_id(self) -> str:
        return self.offer.call_id

    @property
    def dialed_user(self) -> str:
        """The user part of the Request-URI (the number or name dialed), or ""."""
        try:
            return parse_uri(self.offer.invite.uri).user or ""
        except SipParseError:
            return ""

    def job_spec(self) -> dict[str, Any]:
        cfg = self._source.config
        spec: dict[str, Any] = {
            "kind": "sip",
            "call_id": self.call_id,
            "host": self._source.host,
            # Where the job's RTP may latch (symmetric RTP behind a NAT): the INVITE's
            # source IP, within the same allowlist the signaling applies.
            "signaling_host": self.offer.source[0],
            "allowed_sources": list(cfg.allowed_sources) if cfg.allowed_sources else None,
            "sdp_offer": self.offer.invite.body.decode("utf-8", "replace"),
            "caller": self.offer.invite.from_addr.uri or "sip-caller",
            "rtp_port_range": list(cfg.rtp_port_range) if cfg.rtp_port_range else None,
            "rtp_timeout_s": cfg.rtp_timeout_s,
            "close_timeout": cfg.close_timeout,
            "max_call_s": cfg.max_call_s,
            "providers": cfg.providers,
            "stack": dict(cfg.stack) if cfg.stack else None,
            "metadata": {
                **cfg.metadata,
                "sip_to_user": self.dialed_user,
                "sip_from": self.offer.invite.from_addr.uri,
            },
        }
        script = cfg.scripts.get(self.dialed_user, cfg.llm)
        if script is not None:
            spec["llm"] = [dict(r) for r in script]
        return spec

    def job_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "media_ready":
            self._source.answer(self, int(data["port"]))
        else:
            log.warning("call %s: unknown job event %r", self.call_id, name)

    def report_extra(self, outcome: JobOutcome, report: dict[str, Any]) -> dict[str, Any]:
        """The report's ``"sip"`` block: the job's (RTP counters, its room's disconnect
        reason) plus what only signaling knows, as ``voxlane sip`` reports it (``from``,
        ``source``, ``codec``, ``answered`` = ACKed, ``ring_s``, ``talk_s``, ``ended_by``,
        ``dialog_reason``). A job that could not report has the signaling side only."""
        now = self._source.clock.now()
        invite = self.offer.invite
        job_block = dict(report.get("sip") or {})
        block: dict[str, Any] = {
            "call_id": self.call_id,
            "disconnect_reason": None,
            "rtp": None,
            **job_block,
        }
        block.update(
            {
                "from": invite.from_addr.uri,
                "source": f"{self.offer.source[0]}:{self.offer.source[1]}",
                "codec": self.negotiation.encoding,
                "answered": self.confirmed_at is not None,
                "ring_s": round((self.confirmed_at or now) - self.offered_at, 3),
                "talk_s": round(now - self.confirmed_at, 3) if self.confirmed_at else 0.0,
                "ended_by": sip_ended_by(self.terminated, outcome, report),
                "dialog_reason": self.terminated,
            }
        )
        return {"sip": block}


class SipCallSource:
    """Takes SIP calls on a UDP socket and offers them to the worker (``CallSource``).

    :meth:`open` binds the socket (so :attr:`port` is known before :meth:`run`); ``run``
    opens it if needed and serves until cancelled. Counters: ``offered``, ``answered``,
    ``rejected`` (call id, reason), ``ended`` (call id → outcome, recent calls only), and
    ``answer_latency_ms``: INVITE received → 200 OK sent, for recent calls (it includes
    handing the call to a job process and that job opening its RTP socket).
    """

    def __init__(self, config: SipSourceConfig | None = None, *, clock: Clock = DEFAULT_CLOCK):
        self.config = config or SipSourceConfig()
        self.clock = clock
        self._signaling: SipSignaling | None = None
        self._sink: CallSink | None = None
        self._calls: dict[str, SipCall] = {}
        self.host = self.config.host
        self.port = self.config.port
        self.offered = 0
        self.answered = 0
        # A worker runs for weeks: only recent calls are kept here.
        self.rejected: deque[tuple[str, str]] = deque(maxlen=RECENT)
        self.ended: dict[str, JobOutcome] = {}
        self.answer_latency_ms: deque[float] = deque(maxlen=RECENT)

    async def open(self) -> None:
        """Bind the SIP socket. Raises ``OSError`` when it cannot. Idempotent."""
        if self._signaling is not None:
            return
        cfg = self.config
        signaling = await open_sip_signaling(cfg.host, cfg.port, clock=self.clock)
        self.host, self.port = signaling.local_address
        core = SipEndpointCore(
            EndpointConfig(
                dialog=DialogConfig(local_host=self.host, local_port=self.port, t1=cfg.t1),
                max_calls=cfg.max_dialogs,
                max_dialogs=cfg.max_dialogs,
                allowed_sources=cfg.allowed_sources,
                retry_after_s=cfg.retry_after_s,
            )
        )
        signaling.attach(core, self._on_event)
        self._signaling = signaling

    # -- CallSource -------------------------------------------------------------------------
    async def run(self, sink: CallSink) -> None:
        """Serve until cancelled. The sink is registered before the first await: once this
        run has taken its first step, every INVITE is offered to ``sink`` (before, it is
        answered 503: the worker is not ready)."""
        self._sink = sink
        await self.open()
        await asyncio.get_running_loop().create_future()  # until cancelled

    def reject(self, call: Call, reason: str) -> None:
        """Not accepted: 503 when the worker is starting, full or draining, else 500."""
        self.rejected.append((call.call_id, reason))
        self._calls.pop(call.call_id, None)
        status = 503 if reason in _RETRY_LATER else 500
        self._command(lambda core, now: core.reject(call.call_id, status, now))

    def call_ended(self, call: Call, outcome: JobOutcome, report: dict[str, Any]) -> None:
        """Hang up a caller who is still there: BYE once answered, 503 before."""
        self.ended[call.call_id] = outcome
        while len(self.ended) > RECENT:
            del self.ended[next(iter(self.ended))]
        sip_call = self._calls.pop(call.call_id, None)
        if sip_call is not None:
            self._hang_up(sip_call, "job_ended")

    async def aclose(self) -> None:
        """Hang up every call still up (BYE), then close the socket. Never blocks."""
        for call in list(self._calls.values()):
            self._hang_up(call, "shutdown")
        self._calls.clear()
        if self._signaling is not None:
            self._signaling.close()

    def _hang_up(self, call: SipCall, reason: str) -> None:
        if call.terminated is not None:
            return  # the caller already left
        if call.answered:
            self._command(lambda core, now: core.hangup(call.call_id, now, reason))
        else:
            self._command(lambda core, now: core.reject(call.call_id, 503, now))

    # -- from the job -------------------------------------------------------------------------
    def answer(self, call: SipCall, rtp_port: int) -> None:
        """The job's RTP socket is open: 200 OK with our SDP (ignored if the call ended)."""
        if call.terminated is not None or call.answered or call.call_id not in self._calls:
            return
        sdp = build_answer(
            call.negotiation,
            local_ip=self.host,
            local_port=rtp_port,
            session_id=secrets.randbelow(1 << 31),
        )
        if self._command(lambda core, now: core.answer(call.call_id, sdp, now)):
            call.answered = True
            self.answered += 1
            self.answer_latency_ms.append((self.clock.now() - call.offered_at) * 1000)

    # -- SIP events (synchronous, from the signaling pump) ------------------------------------
    def _on_event(self, event: DialogNotification) -> None:
        if isinstance(event, CallOffered):
            self._offered(event)
        elif isinstance(event, CallTerminated):
            call = self._calls.get(event.call_id)
            if call is not None and call.terminated is None:
                call.terminated = event.reason
                if self._sink is not None:
                    self._sink.remote_hangup(
                        call.call_id, _HANGUP_REASONS.get(event.reason, "error")
                    )
        elif isinstance(event, CallConfirmed):
            # Media already flows (the job started it with the answer); the ACK makes the
            # call "answered" in its report, as in voxlane sip's.
            confirmed = self._calls.get(event.call_id)
            if confirmed is not None and confirmed.confirmed_at is None:
                confirmed.confirmed_at = self.clock.now()

    def _offered(self, event: CallOffered) -> None:
        self.offered += 1
        try:
            negotiation = negotiate(parse_sdp(event.invite.body))
        except SdpError as exc:  # the core refuses these first; kept so none is left ringing
            unacceptable = isinstance(exc, SdpNotAcceptableError)  # parsed, but unusable
            status, reason = (488, "sdp_not_acceptable") if unacceptable else (400, "bad_sdp")
            warning = str(exc)
            self.rejected.append((event.call_id, reason))
            self._command(
                lambda core, now: core.reject(event.call_id, status, now, warning=warning)
            )
            return
        call = SipCall(self, event, negotiation)
        if self._sink is None:  # bound, but the worker is not serving yet: try again later
            self.reject(call, "starting")
            return
        self._calls[call.call_id] = call
        self._sink.offer(call)  # False: the worker already called reject()

    def _command(self, action: Callable[[SipEndpointCore, float], None]) -> bool:
        """Run a core command; False when the dialog is gone or in another state (the
        caller hung up in the meantime) or the socket is closed."""
        if self._signaling is None or self._signaling.closed:
            return False
        try:
            self._signaling.command(action)
        except (UnknownCallError, DialogStateError):
            return False
        return True
