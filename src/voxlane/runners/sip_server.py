"""Answer SIP calls with voxlane agents: one :class:`AgentSession` per call.

::

    server = await serve_sip(agent_factory, providers_factory,
                             SipServerConfig(host="127.0.0.1", port=5060, reports_dir=Path("r")))
    ...
    await server.aclose()   # bounded: BYE to live calls, sessions closed, sockets closed

A call's life (one owned task per call, :meth:`SipServer._run_call`):

1. INVITE → the core sends 100 Trying and reports CallOffered (it has already refused,
   statelessly, an offer no call could come of: an SDP that does not parse (400), a media
   address that is not a usable IP literal or no common codec (488)); the SDP offer is
   negotiated, an RTP socket is opened, and after ``answer_delay_s`` (ringing) the core
   answers 200 OK with our SDP.
2. ACK (CallConfirmed) → a :class:`SipRoom` and an :class:`AgentSession` start
   (``close_on_disconnect=True``); media latches onto the caller's RTP (NAT), within the
   allowlist (with an SDP address outside it, nothing is sent until then). No ACK within
   64·T1 → the core ends the call (``ended_by: "no_ack"``) and its slot is free at once.
3. The call ends one of four ways, each closing the session within its budget:
   caller BYE → room disconnect HANGUP; RTP silence for ``rtp_timeout_s`` → TIMEOUT and we
   send BYE; the agent closes the session (e.g. a tool calls ``session.shutdown()``) → we
   send BYE; server shutdown → ROOM_CLOSED and BYE. CANCEL (or any end) before the ACK →
   no session was started.
4. The RTP socket is closed and ``reports_dir/<call-id>.json`` is written: the session's
   DESIGN §8 report plus a ``"sip"`` block (for a call that never got a session, only
   ``session_id: null`` and the ``"sip"`` block).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.tasks import AbandonedTask, TaskOwner
from voxlane.core.states import SessionState
from voxlane.errors import ClosedError
from voxlane.providers.llm import LLM
from voxlane.providers.stt import STT
from voxlane.providers.tts import TTS
from voxlane.providers.vad import VAD
from voxlane.room import DisconnectReason
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
    UnknownCallError,
)
from voxlane.transports.sip.room import SipRoom
from voxlane.transports.sip.rtp_io import RtpStream, open_rtp_stream
from voxlane.transports.sip.sdp import AudioNegotiation, build_answer, negotiate, parse_sdp
from voxlane.transports.sip.udp import SipSignaling, open_sip_signaling
from voxlane.voice.agent import Agent
from voxlane.voice.report import report_file_name, write_json_durably
from voxlane.voice.session import AgentSession

__all__ = ["Providers", "SipServer", "SipServerConfig", "SipServerStatistics", "serve_sip"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Providers:
    """The providers one call's session uses (a new set per call)."""

    stt: STT | None = None
    llm: LLM | None = None
    tts: TTS | None = None
    vad: VAD | None = None


@dataclass(frozen=True, kw_only=True)
class SipServerConfig:
    """``host`` is bound and advertised (Via, Contact, SDP): use an address callers reach.
    ``port`` 0 = ephemeral (see :attr:`SipServer.port`). ``rtp_port_range``: inclusive,
    even ports used; None = ephemeral. ``close_timeout``: each session's close budget.
    ``shutdown_timeout``: bound of :meth:`SipServer.aclose` beyond the close budget.
    ``max_call_s``: a call still up after this long is hung up by us (no wait in voxlane
    is unbounded, not even a conversation). ``retry_after_s``: the Retry-After of every
    503 we send (full, shutting down, no RTP port). ``t1``: the SIP timer T1 (RFC 3261);
    a 200 OK never ACKed ends the call after 64·T1. ``max_dialogs``: dialogs the SIP core
    keeps, active or ended and absorbing retransmissions (None: ``max(64, 8 *
    max_calls)``; see :class:`EndpointConfig`). ``allowed_sources``: where SIP requests
    may come from (403 otherwise) and RTP may go (see docs/sip.md, "Where media goes")."""

    host: str = "127.0.0.1"
    port: int = 5060
    max_calls: int = 10
    max_dialogs: int | None = None
    allowed_sources: tuple[str, ...] | None = None
    rtp_port_range: tuple[int, int] | None = None
    rtp_timeout_s: float = 10.0
    answer_delay_s: float = 0.0
    close_timeout: float = 4.0
    shutdown_timeout: float = 2.0
    max_call_s: float = 4 * 3600.0
    reports_dir: Path | None = None
    retry_after_s: int = 5
    report_mode: int = 0o600  # reports hold transcripts: owner only unless asked
    t1: float = 0.5


@dataclass(frozen=True, slots=True)
class SipServerStatistics:
    calls_offered: int
    calls_answered: int
    calls_active: int
    peak_active: int
    sessions_started: int
    reports_written: int
    report_errors: int
    call_errors: int
    listener_errors: int
    core_internal_errors: int


@dataclass(eq=False)
class _Call:
    call_id: str
    offer: CallOffered
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    terminated: asyncio.Event = field(default_factory=asyncio.Event)
    dialog_reason: str | None = None
    ended_by: str | None = None  # caller_bye, cancel, rtp_timeout, agent_hangup, ...
    negotiation: AudioNegotiation | None = None
    room: SipRoom | None = None
    session: AgentSession | None = None
    media: RtpStream | None = None
    offered_at: float = 0.0  # loop clock
    confirmed_at: float | None = None


class SipServer:
    """Listens for calls; see the module docstring. Create with :func:`serve_sip`."""

    def __init__(self, signaling: SipSignaling, agent_factory: Callable[[], Agent],
                 providers_factory: Callable[[], Providers], config: SipServerConfig,
                 clock: Clock = DEFAULT_CLOCK) -> None:
        self.config = config
        self._signaling = signaling
        self._agent_factory = agent_factory
        self._providers_factory = providers_factory
        self._clock = clock
        host, port = signaling.local_address
        self.host, self.port = host, port
        self._core = SipEndpointCore(EndpointConfig(
            dialog=DialogConfig(local_host=host, local_port=port, t1=config.t1),
            max_calls=config.max_calls, max_dialogs=config.max_dialogs,
            allowed_sources=config.allowed_sources,
            retry_after_s=config.retry_after_s))
        self._calls: dict[str, _Call] = {}
        self._owner = TaskOwner("sip-server", on_error=self._on_call_error, clock=clock)
        self._closing = False
        self._closed = asyncio.Event()
        self.abandoned: list[AbandonedTask] = []
        self.reports: list[Path] = []
        self._offered = self._answered = self._sessions = self._report_errors = 0
        self._peak = self._call_errors = 0
        signaling.attach(self._core, self._on_event)

    # -- observation ---------------------------------------------------------------

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def live_sessions(self) -> list[AgentSession]:
        return [c.session for c in self._calls.values() if c.session is not None]

    def statistics(self) -> SipServerStatistics:
        core = self._core.statistics()
        return SipServerStatistics(
            calls_offered=self._offered, calls_answered=self._answered,
            calls_active=len(self._calls), peak_active=self._peak,
            sessions_started=self._sessions,
            reports_written=len(self.reports), report_errors=self._report_errors,
            call_errors=self._call_errors,
            listener_errors=self._signaling.errors, core_internal_errors=core.internal_errors)

    def rtp_streams(self) -> list[RtpStream]:
        """Media of the live calls (for benchmarks and tests)."""
        return [c.media for c in self._calls.values() if c.media is not None]

    # -- SIP events (synchronous, from the signaling pump) -----------------------------

    def _on_event(self, event: DialogNotification) -> None:
        if isinstance(event, CallOffered):
            self._offered += 1
            if self._closing:
                self._signaling.command(lambda core, now: core.reject(event.call_id, 503, now))
                return
            call = _Call(event.call_id, event, offered_at=self._clock.now())
            self._calls[event.call_id] = call
            self._peak = max(self._peak, len(self._calls))
            try:
                self._owner.spawn(self._run_call(call), name=f"call:{event.call_id}")
            except ClosedError:
                del self._calls[event.call_id]
        elif isinstance(event, CallConfirmed):
            call_or_none = self._calls.get(event.call_id)
            if call_or_none is not None:
                call_or_none.confirmed_at = self._clock.now()
                call_or_none.confirmed.set()
        elif isinstance(event, CallTerminated):
            ended = self._calls.get(event.call_id)
            if ended is not None:
                self._on_terminated(ended, event.reason)

    def _on_terminated(self, call: _Call, reason: str) -> None:
        call.dialog_reason = reason
        call.terminated.set()
        if call.ended_by is None:
            call.ended_by = {"bye": "caller_bye", "cancel": "cancel"}.get(reason, reason)
        if call.room is not None:
            room_reason = {"bye": DisconnectReason.HANGUP,
                           "cancel": DisconnectReason.CANCELLED}.get(reason,
                                                                      DisconnectReason.ERROR)
            call.room.disconnect(room_reason)

    def _on_rtp_timeout(self, call: _Call) -> None:
        if call.ended_by is None:
            call.ended_by = "rtp_timeout"
        self._hangup(call, "rtp_timeout")
        if call.room is not None:
            call.room.disconnect(DisconnectReason.TIMEOUT)

    def _hangup(self, call: _Call, reason: str) -> None:
        """BYE (or 603 before the answer); a no-op for a call already ending or gone."""
        if self._signaling.closed:
            return
        try:
            self._signaling.command(lambda core, now: core.hangup(call.call_id, now, reason))
        except (UnknownCallError, DialogStateError):
            pass  # the dialog already ended: nothing to hang up

    def _on_call_error(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        # The call was already hung up and reported by _run_call's finally; what is left
        # is to make the failure visible (statistics) and keep its traceback (log).
        self._call_errors += 1
        log.error("SIP call task %s failed", task.get_name(), exc_info=exc)

    # -- one call ---------------------------------------------------------------------

    async def _run_call(self, call: _Call) -> None:
        """Answer, run the session, hang up, report. Owns the call's RTP socket."""
        try:
            if await self._answer(call):
                await self._converse(call)
        finally:
            try:
                if not call.terminated.is_set():
                    self._hangup(call, call.ended_by or "hangup")
                if call.media is not None:
                    await call.media.aclose(self._clock.now() + 1.0)
            finally:
                self._calls.pop(call.call_id, None)
                self._write_report(call)

    async def _answer(self, call: _Call) -> bool:
        """Negotiate, open RTP, ring, answer. False when the call ended before the answer."""
        try:
            call.negotiation = negotiate(parse_sdp(call.offer.invite.body))
        except SdpError as exc:
            # The core already refused (statelessly) every offer negotiate() refuses; this
            # stays so that a call we cannot negotiate is rejected, never left ringing.
            status = 488 if isinstance(exc, SdpNotAcceptableError) else 400
            warning = str(exc)
            call.ended_by = "rejected"
            self._signaling.command(
                lambda core, now: core.reject(call.call_id, status, now, warning=warning))
            return False
        try:
            call.media = await open_rtp_stream(
                self.host, port_range=self.config.rtp_port_range,
                rtp_timeout_s=self.config.rtp_timeout_s, clock=self._clock, name=call.call_id)
        except OSError:
            log.warning("no RTP port for call %s: answering 503", call.call_id)
            call.ended_by = "no_rtp_port"
            self._signaling.command(lambda core, now: core.reject(call.call_id, 503, now))
            return False
        call.media.on_timeout = lambda: self._on_rtp_timeout(call)
        if self.config.answer_delay_s > 0 and await self._ended_within(
                call, self.config.answer_delay_s):
            return False
        if call.terminated.is_set():
            return False
        sdp = build_answer(call.negotiation, local_ip=self.host,
                           local_port=call.media.local_port,
                           session_id=secrets.randbelow(1 << 31))
        try:
            self._signaling.command(lambda core, now: core.answer(call.call_id, sdp, now))
        except (UnknownCallError, DialogStateError):
            return False  # cancelled in the meantime
        self._answered += 1
        # Wait for the ACK; the core gives up after 64·T1 (and ends the call) by itself.
        confirmed = asyncio.ensure_future(call.confirmed.wait())
        ended = asyncio.ensure_future(call.terminated.wait())
        try:
            await asyncio.wait({confirmed, ended}, timeout=64 * self.config.t1 + 1.0,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            confirmed.cancel()
            ended.cancel()
        return call.confirmed.is_set() and not call.terminated.is_set()

    async def _ended_within(self, call: _Call, seconds: float) -> bool:
        ended = asyncio.ensure_future(call.terminated.wait())
        try:
            await asyncio.wait({ended}, timeout=seconds)
        finally:
            ended.cancel()
        return call.terminated.is_set()

    async def _converse(self, call: _Call) -> None:
        assert call.media is not None and call.negotiation is not None
        providers = self._providers_factory()
        session = AgentSession(stt=providers.stt, llm=providers.llm, tts=providers.tts,
                               vad=providers.vad, close_timeout=self.config.close_timeout,
                               clock=self._clock)
        call.session = session
        call.room = SipRoom(call.call_id, call.media,
                            caller=call.offer.invite.from_addr.uri or "sip-caller")
        call.media.start(call.negotiation, signaling_host=call.offer.source[0],
                         allowlist=self._core.allowlist)
        self._sessions += 1
        try:
            await session.start(self._agent_factory(), room=call.room, close_on_disconnect=True)
        except BaseException:
            # A session that failed to start, or was cancelled while starting, still
            # closes (bounded by its budget) so the report says what happened.
            call.ended_by = call.ended_by or "error"
            if session.state is not SessionState.NEW:
                closing = asyncio.ensure_future(session.aclose())
                await asyncio.wait({closing}, timeout=self.config.close_timeout + 1.0)
            raise
        if self._closing or call.terminated.is_set():
            # The call ended while the session was starting: its disconnect came before
            # the session subscribed to the room.
            session.shutdown(drain=False)
        closed = asyncio.ensure_future(session.wait_closed())
        try:
            await asyncio.wait({closed}, timeout=self.config.max_call_s)
            if not closed.done():
                call.ended_by = call.ended_by or "max_duration"
                call.room.disconnect(DisconnectReason.ROOM_CLOSED)
                # The close itself is bounded by the session's close budget (I1).
                await asyncio.wait({closed}, timeout=self.config.close_timeout + 1.0)
        finally:
            closed.cancel()
        if call.ended_by is None:
            call.ended_by = "agent_hangup"  # the session closed first: we end the call
        self._hangup(call, call.ended_by)

    # -- reports ----------------------------------------------------------------------

    def _write_report(self, call: _Call) -> None:
        report: dict[str, Any]
        session = call.session
        if session is not None and session.close_event is not None:
            report = session.report_dict()
        else:
            report = {"session_id": None}
        media = call.media.statistics() if call.media is not None else None
        now = self._clock.now()
        report["sip"] = {
            "call_id": call.call_id,
            "from": call.offer.invite.from_addr.uri,
            "source": f"{call.offer.source[0]}:{call.offer.source[1]}",
            "codec": call.negotiation.encoding if call.negotiation else None,
            "answered": call.confirmed_at is not None,
            "ring_s": round((call.confirmed_at or now) - call.offered_at, 3),
            "talk_s": round(now - call.confirmed_at, 3) if call.confirmed_at else 0.0,
            "ended_by": call.ended_by or "unknown",
            "dialog_reason": call.dialog_reason,
            "disconnect_reason": (call.room.disconnect_reason.value
                                  if call.room is not None and call.room.disconnect_reason
                                  else None),
            "rtp": None if media is None else {
                "packets_in": media.packets_in, "packets_out": media.packets_out,
                "loud_packets_out": media.loud_packets_out,
                "lost": media.lost, "late": media.late, "garbage": media.garbage,
                "frames_unsent": media.frames_unsent,
            },
        }
        if self.config.reports_dir is None:
            return
        path = self.config.reports_dir / report_file_name(call.call_id)
        try:
            write_json_durably(path, report, mode=self.config.report_mode)
            self.reports.append(path)
        except OSError:
            self._report_errors += 1
            log.exception("could not write the report of call %s", call.call_id)

    # -- closing ----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop taking calls, hang up live calls (BYE), close their sessions and the
        sockets. Bounded by ``close_timeout + shutdown_timeout``; idempotent; the SIP
        socket is closed whatever happens. Call tasks that outlive the bound are
        abandoned and listed in :attr:`abandoned`."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        deadline = self._clock.now() + self.config.close_timeout + self.config.shutdown_timeout
        try:
            for call in list(self._calls.values()):
                if call.ended_by is None:
                    call.ended_by = "server_shutdown"
                self._hangup(call, "server_shutdown")
                if call.room is not None:
                    call.room.disconnect(DisconnectReason.ROOM_CLOSED)
                else:
                    call.terminated.set()  # not answered yet: stop ringing
            live = self._owner.live
            if live:
                await asyncio.wait(live, timeout=max(0.0, deadline - self._clock.now()))
            self.abandoned = await self._owner.shutdown(deadline)
        finally:
            self._signaling.close()
            self._closed.set()


async def serve_sip(agent_factory: Callable[[], Agent],
                    providers_factory: Callable[[], Providers],
                    config: SipServerConfig | None = None, *,
                    clock: Clock = DEFAULT_CLOCK) -> SipServer:
    """Bind the SIP socket and start answering calls. Raises ``OSError`` if binding fails.
    The caller owns the server and must ``await server.aclose()``."""
    config = config or SipServerConfig()
    signaling = await open_sip_signaling(config.host, config.port, clock=clock)
    return SipServer(signaling, agent_factory, providers_factory, config, clock)
