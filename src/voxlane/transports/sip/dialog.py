"""A user agent server's call, as a pure state machine (RFC 3261 §12-§17, UDP only).

One :class:`UasDialog` per incoming INVITE. It never does I/O and never reads a clock:

* inputs: the INVITE (constructor), :meth:`UasDialog.receive_request`,
  :meth:`UasDialog.receive_response`, :meth:`UasDialog.handle_timeout` (each with ``now``)
  and the application's :meth:`answer` / :meth:`reject` / :meth:`hangup`;
* outputs: :meth:`messages_to_send` (each with its destination), :meth:`events_received`
  (CallOffered, CallConfirmed, CallTerminated) and :meth:`next_deadline`, the time at
  which the caller must call :meth:`handle_timeout` next.

States and the events that move between them (the table :data:`TRANSITIONS` is the
source of truth; an application event not in it raises :class:`DialogStateError`)::

    IDLE ─RECV_INVITE→ PROCEEDING (100 Trying sent)
    PROCEEDING ─APP_ANSWER→ ANSWERED (200 OK + SDP, retransmitted T1, 2T1, ... ≤ T2)
    PROCEEDING ─APP_REJECT | APP_HANGUP | RECV_CANCEL→ REJECTED (final ≥ 300, retransmitted)
    ANSWERED ─RECV_ACK→ CONFIRMED;  ─ACK_TIMEOUT (64·T1)→ TERMINATING (BYE sent; the
             call ends for the application at once: CallTerminated "no_ack")
    ANSWERED | CONFIRMED ─RECV_BYE→ TERMINATED (200 to the BYE)
    CONFIRMED ─APP_HANGUP→ TERMINATING (BYE, retransmitted T1 doubling ≤ T2)
    TERMINATING ─RECV_BYE_RESPONSE | BYE_TIMEOUT | RECV_BYE→ TERMINATED
    REJECTED ─RECV_ACK | FINAL_TIMEOUT→ TERMINATED

A hangup while ANSWERED is deferred until the ACK (or its timeout): §15 forbids a BYE
before then. A dialog is *active* (counts against the endpoint's call limit) until the
call is over for the application: REJECTED, TERMINATING (our BYE is out: the media has
stopped, whatever the BYE's fate) and TERMINATED are not active. That is what keeps an
INVITE that is never ACKed (spoofed, say) from holding a call slot through 32 s of BYE
retransmissions. Hangups in REJECTED/TERMINATING/TERMINATED are no-ops, so closing twice is
safe. Remote input never raises: retransmissions get the cached response, requests the
state cannot take get the RFC's answer (481, 491, 500, 405, 501).

Deliberately left out: re-INVITEs that change media (a re-INVITE is answered with the
same SDP, which keeps session timers and hold-less refreshes working), UPDATE, PRACK
(100rel), early media, offers in ACK (late offer), authentication, TCP/TLS.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from .common import (
    Address,
    DialogConfig,
    Outgoing,
    RetransmitTimer,
    method_not_allowed_or_implemented,
)
from .errors import DialogStateError, SipParseError
from .message import Headers, SipRequest, SipResponse, build_response

__all__ = [
    "TRANSITIONS",
    "CallConfirmed",
    "CallOffered",
    "CallTerminated",
    "DialogEvent",
    "DialogNotification",
    "DialogState",
    "UasDialog",
]


class DialogState(enum.Enum):
    """Where a UAS call is; see the module docstring for the diagram."""

    IDLE = "IDLE"
    PROCEEDING = "PROCEEDING"
    ANSWERED = "ANSWERED"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"


class DialogEvent(enum.Enum):
    """What can happen to a dialog: RECV_* from the caller, APP_* from the application,
    *_TIMEOUT from :meth:`UasDialog.handle_timeout`."""

    RECV_INVITE = "RECV_INVITE"
    APP_ANSWER = "APP_ANSWER"
    APP_REJECT = "APP_REJECT"
    APP_HANGUP = "APP_HANGUP"
    RECV_CANCEL = "RECV_CANCEL"
    RECV_ACK = "RECV_ACK"
    RECV_BYE = "RECV_BYE"
    RECV_BYE_RESPONSE = "RECV_BYE_RESPONSE"
    ACK_TIMEOUT = "ACK_TIMEOUT"
    BYE_TIMEOUT = "BYE_TIMEOUT"
    FINAL_TIMEOUT = "FINAL_TIMEOUT"


S, E = DialogState, DialogEvent
TRANSITIONS: dict[DialogState, dict[DialogEvent, DialogState]] = {
    S.IDLE: {E.RECV_INVITE: S.PROCEEDING},
    S.PROCEEDING: {
        E.APP_ANSWER: S.ANSWERED,
        E.APP_REJECT: S.REJECTED,
        E.APP_HANGUP: S.REJECTED,
        E.RECV_CANCEL: S.REJECTED,
    },
    S.ANSWERED: {
        E.RECV_ACK: S.CONFIRMED,
        E.RECV_BYE: S.TERMINATED,
        E.APP_HANGUP: S.ANSWERED,  # deferred until ACK or ACK_TIMEOUT (§15)
        E.ACK_TIMEOUT: S.TERMINATING,
    },
    S.CONFIRMED: {E.RECV_BYE: S.TERMINATED, E.APP_HANGUP: S.TERMINATING},
    S.REJECTED: {
        E.RECV_ACK: S.TERMINATED,
        E.FINAL_TIMEOUT: S.TERMINATED,
        E.APP_HANGUP: S.REJECTED,
    },
    S.TERMINATING: {
        E.RECV_BYE: S.TERMINATED,
        E.RECV_BYE_RESPONSE: S.TERMINATED,
        E.BYE_TIMEOUT: S.TERMINATED,
        E.APP_HANGUP: S.TERMINATING,
    },
    S.TERMINATED: {E.APP_HANGUP: S.TERMINATED},
}
del S, E
_INACTIVE = frozenset({DialogState.REJECTED, DialogState.TERMINATING, DialogState.TERMINATED})


@dataclass(frozen=True, slots=True)
class CallOffered:
    """A new call: answer with SDP (negotiate ``invite.body``) or reject it."""

    call_id: str
    invite: SipRequest
    source: Address


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    """The caller ACKed our 200 OK: the call is up."""

    call_id: str


@dataclass(frozen=True, slots=True)
class CallTerminated:
    """The call is over; stop media. Emitted once: on a final error response to the
    INVITE (reject, CANCEL), on the caller's BYE, at the ACK timeout (64·T1 without an
    ACK to our 200 OK: the BYE we send then is retransmitted on its own), or when our BYE
    completes or times out. ``reason``: bye, cancel, rejected, no_ack, or the reason given
    to :meth:`UasDialog.hangup` (default ``hangup``)."""

    call_id: str
    reason: str


DialogNotification = CallOffered | CallConfirmed | CallTerminated

_RESPONSE_CACHE = 16  # requests whose responses we keep for retransmissions


class UasDialog:
    """One incoming call. See the module docstring for the state machine.

    ``local_tag`` is our To tag; draw it from ``secrets`` (it must be unique and
    unguessable). The constructor processes the INVITE: 100 Trying is queued and a
    :class:`CallOffered` event is emitted.
    """

    def __init__(
        self,
        invite: SipRequest,
        source: Address,
        now: float,
        *,
        config: DialogConfig,
        local_tag: str,
    ) -> None:
        self.config = config
        self.local_tag = local_tag
        self.call_id = invite.call_id
        self.remote_tag = invite.from_addr.tag or ""
        self.state = DialogState.IDLE
        self.termination_reason: str | None = None
        self._invite = invite
        self._invite_addr = invite.top_via.response_address(source)
        self._peer = source  # our in-dialog requests go back along the INVITE's flow
        self._invite_branch = invite.top_via.branch
        self._remote_target = _remote_target(invite)
        self._remote_cseq = invite.cseq.number
        self._local_cseq = config.initial_cseq
        self._answer_sdp = b""
        self._hangup_reason: str | None = None
        self._bye: SipRequest | None = None
        self._timer: RetransmitTimer | None = None
        self._timer_message: Outgoing | None = None
        self._linger_until: float | None = None
        self._notified = False
        self._cache: dict[tuple[str, int, str | None], Outgoing] = {}
        self._outbox: list[Outgoing] = []
        self._events: list[DialogNotification] = []
        self._fire(DialogEvent.RECV_INVITE)
        self._respond(invite, build_response(invite, 100), self._invite_addr)
        self._events.append(CallOffered(self.call_id, invite, source))

    # -- outputs -------------------------------------------------------------------

    def messages_to_send(self) -> list[Outgoing]:
        """Messages queued since the last call, in order; the caller must send them all."""
        out, self._outbox = self._outbox, []
        return out

    def events_received(self) -> list[DialogNotification]:
        """Notifications for the application since the last call."""
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must run next, or None when nothing is pending."""
        if self._timer is not None:
            return self._timer.next_deadline()
        return self._linger_until

    def is_expired(self, now: float) -> bool:
        """True once TERMINATED and past the linger time: the owner may forget the dialog."""
        return self._linger_until is not None and now >= self._linger_until

    @property
    def is_active(self) -> bool:
        """True until the call is over for the application (rejected, our BYE sent, or
        terminated): counts against the endpoint's call limit."""
        return self.state not in _INACTIVE

    # -- application events --------------------------------------------------------

    def answer(self, sdp: bytes, now: float) -> None:
        """Send 200 OK with ``sdp`` (the answer); retransmitted until ACK.

        Raises DialogStateError unless PROCEEDING (e.g. the caller cancelled first).
        """
        self._fire(DialogEvent.APP_ANSWER)
        self._answer_sdp = sdp
        ok = build_response(
            self._invite, 200, to_tag=self.local_tag, headers=self._answer_headers(), body=sdp
        )
        self._respond(self._invite, ok, self._invite_addr, retransmit_from=now)

    def reject(
        self,
        status: int,
        now: float,
        reason: str | None = None,
        *,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Send a final error response (≥ 300) to the INVITE, with ``headers`` added;
        retransmitted until ACK."""
        if not 300 <= status <= 699:
            raise ValueError(f"reject needs a status in 300..699, got {status}")
        self._fire(DialogEvent.APP_REJECT)
        self._reject(status, now, reason, "rejected", headers)

    def hangup(self, now: float, reason: str = "hangup") -> None:
        """End the call from our side; idempotent.

        PROCEEDING: 603 Decline. ANSWERED: BYE once ACKed (or on ACK timeout).
        CONFIRMED: BYE now, retransmitted until answered or 64·T1.
        """
        previous = self.state
        self._fire(DialogEvent.APP_HANGUP)
        if previous is DialogState.PROCEEDING:
            self._reject(603, now, None, reason)
        elif previous is DialogState.ANSWERED:
            self._hangup_reason = reason
        elif previous is DialogState.CONFIRMED:
            self._send_bye(now, reason)

    # -- remote events -------------------------------------------------------------

    def receive_request(self, request: SipRequest, source: Address, now: float) -> None:
        """Process a request routed to this dialog (Via already stamped). Never raises."""
        addr = request.top_via.response_address(source)
        cseq = request.cseq.number
        if request.method == "ACK":
            self._receive_ack(cseq, now)
            return
        cached = self._cache.get((request.method, cseq, request.top_via.branch))
        if cached is not None:  # a retransmission: repeat what we said (§17.2)
            self._outbox.append(cached)
            return
        to_tag = request.to_addr.tag
        if request.method == "CANCEL":
            self._receive_cancel(request, addr, now)
        elif to_tag is None:
            # Same Call-ID and From tag, new transaction, no To tag: a merged or
            # looped INVITE (§8.2.2.2), or an out-of-dialog request reusing our Call-ID.
            status = 482 if request.method == "INVITE" else 481
            self._respond(request, build_response(request, status, to_tag=self.local_tag), addr)
        elif to_tag != self.local_tag or self.state in (
            DialogState.PROCEEDING,
            DialogState.REJECTED,
        ):
            self._respond(request, build_response(request, 481), addr)
        elif cseq <= self._remote_cseq:
            self._respond(request, build_response(request, 500, "CSeq Out of Order"), addr)
        else:
            self._remote_cseq = max(self._remote_cseq, cseq)
            self._receive_in_dialog(request, addr, now)

    def receive_response(self, response: SipResponse, now: float) -> None:
        """Process a response to a request we sent (our BYE). Never raises."""
        bye = self._bye
        if bye is None or self.state is not DialogState.TERMINATING:
            return
        cseq = response.cseq
        if cseq.method != "BYE" or cseq.number != bye.cseq.number:
            return
        if response.top_via.branch != bye.top_via.branch:
            return
        if response.status >= 200:
            self._fire(DialogEvent.RECV_BYE_RESPONSE)
            self._terminate(now)
        elif self._timer is not None:
            self._timer.provisional()  # §17.1.2.2: keep retransmitting, at T2

    def handle_timeout(self, now: float) -> None:
        """Run due timers: retransmissions and give-ups. Call at :meth:`next_deadline`."""
        timer = self._timer
        if timer is None:
            return
        if timer.expired(now):
            self._timer = None
            if self.state is DialogState.ANSWERED:
                # Timer H (§13.3.1.4): the call is over now. The BYE that §13.3.1.4 asks
                # for is retransmitted on its own; it no longer holds a call slot.
                self._fire(DialogEvent.ACK_TIMEOUT)
                self._send_bye(now, self._hangup_reason or "no_ack")
                self._notify_terminated()
            elif self.state is DialogState.REJECTED:
                self._fire(DialogEvent.FINAL_TIMEOUT)
                self._terminate(now)
            elif self.state is DialogState.TERMINATING:
                self._fire(DialogEvent.BYE_TIMEOUT)
                self._terminate(now)
        elif timer.due(now) and self._timer_message is not None:
            self._outbox.append(self._timer_message)
            timer.advance(now)

    # -- internals -------------------------------------------------------------------

    def _fire(self, event: DialogEvent) -> None:
        try:
            self.state = TRANSITIONS[self.state][event]
        except KeyError:
            raise DialogStateError(event.value, self.state.value) from None

    def _can(self, event: DialogEvent) -> bool:
        return event in TRANSITIONS[self.state]

    def _respond(
        self,
        request: SipRequest,
        response: SipResponse,
        addr: Address,
        retransmit_from: float | None = None,
    ) -> None:
        response.headers.add("server", self.config.user_agent)
        out = Outgoing(response, addr)
        self._outbox.append(out)
        key = (request.method, request.cseq.number, request.top_via.branch)
        self._cache[key] = out
        while len(self._cache) > _RESPONSE_CACHE:
            del self._cache[next(iter(self._cache))]
        if retransmit_from is not None:
            self._timer = RetransmitTimer.start(retransmit_from, self.config.t1, self.config.t2)
            self._timer_message = out

    def _answer_headers(self) -> list[tuple[str, str]]:
        cfg = self.config
        contact = f"<sip:{cfg.contact_user}@{cfg.local_host}:{cfg.local_port}>"
        return [("Contact", contact), ("Allow", cfg.allow), ("Content-Type", "application/sdp")]

    def _reject(
        self,
        status: int,
        now: float,
        phrase: str | None,
        reason: str,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        response = build_response(
            self._invite, status, phrase, to_tag=self.local_tag, headers=headers
        )
        self._respond(self._invite, response, self._invite_addr, retransmit_from=now)
        self.termination_reason = reason
        # The call is over for the application now; the ACK only ends the transaction.
        self._notify_terminated()

    def _receive_ack(self, cseq: int, now: float) -> None:
        if cseq != self._invite.cseq.number or not self._can(DialogEvent.RECV_ACK):
            return  # ACK of a re-INVITE's 200, or a retransmitted ACK: absorbed
        previous = self.state
        self._fire(DialogEvent.RECV_ACK)
        self._timer = self._timer_message = None
        if previous is DialogState.REJECTED:
            self._terminate(now)
        elif self._hangup_reason is not None:
            self._fire(DialogEvent.APP_HANGUP)  # the deferred hangup: CONFIRMED → TERMINATING
            self._send_bye(now, self._hangup_reason)
        else:
            self._events.append(CallConfirmed(self.call_id))

    def _receive_cancel(self, request: SipRequest, addr: Address, now: float) -> None:
        matches = (
            request.top_via.branch == self._invite_branch
            and request.cseq.number == self._invite.cseq.number
        )
        if not matches:
            self._respond(request, build_response(request, 481), addr)
            return
        self._respond(request, build_response(request, 200, to_tag=self.local_tag), addr)
        if self._can(DialogEvent.RECV_CANCEL):
            self._fire(DialogEvent.RECV_CANCEL)
            self._reject(487, now, None, "cancel")

    def _receive_in_dialog(self, request: SipRequest, addr: Address, now: float) -> None:
        method = request.method
        if method == "BYE":
            self._respond(request, build_response(request, 200), addr)
            if self._can(DialogEvent.RECV_BYE):
                if self.state is not DialogState.TERMINATING:
                    self.termination_reason = "bye"
                self._fire(DialogEvent.RECV_BYE)
                self._terminate(now)
        elif method == "INVITE":
            if self.state is DialogState.CONFIRMED:
                # Session refresh: same SDP, same version ("no change", RFC 3264 §8).
                ok = build_response(
                    request, 200, headers=self._answer_headers(), body=self._answer_sdp
                )
                self._respond(request, ok, addr)
            else:
                self._respond(request, build_response(request, 491), addr)
        elif method == "OPTIONS":
            headers = [("Allow", self.config.allow), ("Accept", "application/sdp")]
            self._respond(request, build_response(request, 200, headers=headers), addr)
        else:
            response = method_not_allowed_or_implemented(request, self.config.allow)
            self._respond(request, response, addr)

    def _send_bye(self, now: float, reason: str) -> None:
        self.termination_reason = reason
        self._local_cseq += 1
        cfg = self.config
        invite = self._invite
        branch = f"z9hG4bK-{self.local_tag}-{self._local_cseq}"
        local = invite.to_addr.with_tag(self.local_tag).to_str()
        headers = Headers(
            [
                ("Via", f"SIP/2.0/UDP {cfg.local_host}:{cfg.local_port};branch={branch};rport"),
                ("Max-Forwards", "70"),
                ("From", local),
                ("To", invite.headers.get("from") or ""),
                ("Call-ID", self.call_id),
                ("CSeq", f"{self._local_cseq} BYE"),
                ("User-Agent", cfg.user_agent),
            ]
        )
        for route in invite.headers.get_all("record-route"):  # UAS route set: as recorded
            headers.add("Route", route)
        self._bye = SipRequest(headers=headers, method="BYE", uri=self._remote_target)
        out = Outgoing(self._bye, self._peer)
        self._outbox.append(out)
        self._timer = RetransmitTimer.start(now, cfg.t1, cfg.t2)
        self._timer_message = out

    def _terminate(self, now: float) -> None:
        self._timer = self._timer_message = None
        self._linger_until = now + self.config.linger_s
        self._notify_terminated()

    def _notify_terminated(self) -> None:
        if not self._notified:
            self._notified = True
            self._events.append(CallTerminated(self.call_id, self.termination_reason or "bye"))


def _remote_target(invite: SipRequest) -> str:
    """The caller's Contact URI (§12.1.1), or its From URI when Contact is absent or
    unparseable: the parser does not validate Contact, and a BYE must still go out."""
    try:
        contact = invite.contact
    except SipParseError:
        contact = None
    return contact.uri if contact is not None else invite.from_addr.uri
