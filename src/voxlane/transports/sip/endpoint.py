"""The SIP side of a UDP socket, as a pure object: datagrams in, datagrams out.

:class:`SipEndpointCore` owns every :class:`~.dialog.UasDialog` of one listening socket.
The asyncio layer does only this::

    core.receive_datagram(data, addr, now)          # for each datagram read
    core.handle_timeout(now)                        # when now >= core.next_deadline()
    for data, addr in core.datagrams_to_send(): sock.sendto(data, addr)
    for event in core.events_received(): ...        # CallOffered / CallConfirmed / CallTerminated
    core.answer(call_id, sdp, now) / core.reject(...) / core.hangup(...)

Contracts:

* :meth:`receive_datagram` **never raises**, whatever the bytes. A malformed request is
  answered 400 when its Via, From, To, Call-ID and CSeq are well-formed enough to build
  a response that parses; otherwise (and always for ACK) it is dropped. Every datagram
  the core sends parses with :func:`parse_message`. Other calls are unaffected. An internal
  bug is contained too, and counted in ``statistics().internal_errors`` (tests hold
  that at 0).
* Requests are routed to dialogs by Call-ID and tags; a Call-ID names at most one call.
  New INVITEs beyond ``max_calls`` active calls, or beyond ``max_dialogs`` dialogs kept
  in all (active, or ended and absorbing retransmissions), get 503; sources outside
  ``allowed_sources`` 403, requests for unknown dialogs 481, OPTIONS 200, unknown
  methods 405/501, any ``Require`` 420. A datagram from a source that is not an IP
  literal we can answer (an IPv6 address with a zone) is dropped.
* **Only offers the application can take become calls.** A new INVITE must carry an
  ``application/sdp`` offer (415 for another body type, 488 without a body: no late
  offer) that parses (400), whose usable audio streams' connection addresses
  (:func:`~.sdp.media_hosts`) are usable IP literals (488, :mod:`.addresses`), and that
  :func:`~.sdp.negotiate` can take: a PCMU/PCMA 8 kHz RTP/AVP(F) stream (488). Each is
  refused statelessly, with a Warning saying why, and counted in :meth:`statistics`: no
  CallOffered, no dialog, no retransmission (the caller's retransmitted INVITE gets the
  same answer). So ``negotiate`` of a CallOffered's offer succeeds. An SDP address outside
  ``allowed_sources`` does not refuse the call: it decides where RTP may be sent
  (:class:`~.addresses.RtpLatch`), not whether the call is taken.
* Every 503 carries ``Retry-After: retry_after_s``, whoever decides it: the limits
  here, or the application's ``reject(call_id, 503, now)``.
* A call counts against ``max_calls`` while :attr:`UasDialog.is_active`: until it is
  over for the application. A call whose 200 OK is never ACKed stops counting at the
  ACK timeout (64·T1, CallTerminated reason ``no_ack``), not after its BYE.
* Every datagram goes to an IP literal: responses to the source address (a stamped
  Via, see :meth:`~.headers.Via.stamped`), our BYE to the INVITE's source.
* ``answer``/``reject``/``hangup`` raise :class:`UnknownCallError` for a Call-ID we have
  no dialog for and :class:`DialogStateError` when the dialog's state forbids it (for
  example answering a call the caller already cancelled: watch for CallTerminated).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .addresses import Allowlist, ip_literal, media_address_problem
from .common import Address, DialogConfig, method_not_allowed_or_implemented
from .dialog import DialogNotification, UasDialog
from .errors import SdpNotAcceptableError, SdpParseError, SipParseError, UnknownCallError
from .headers import parse_via
from .message import (
    Headers,
    SipRequest,
    SipResponse,
    build_response,
    canonical_name,
    parse_message,
)
from .sdp import media_hosts, negotiate, parse_sdp

__all__ = ["EndpointConfig", "EndpointStatistics", "SipEndpointCore"]

_REQUEST_LINE = re.compile(r"([A-Za-z]+) \S+ SIP/2\.0\s*$", re.IGNORECASE)
_SALVAGED = ("via", "from", "to", "call-id", "cseq")
_UNQUOTABLE = re.compile(r"[^ -!#-\[\]-~]")  # not printable ASCII, or '"' or '\\'


@dataclass(frozen=True, kw_only=True, slots=True)
class EndpointConfig:
    """Endpoint policy. ``max_calls``: active calls (503 beyond). ``max_dialogs``: dialogs
    kept in all, active or ended and still absorbing retransmissions (64·T1 each); None
    (the default) = ``max(64, 8 * max_calls)`` (:attr:`dialog_limit`); 503 beyond. It
    bounds the core's memory when INVITEs that are rejected or never ACKed (spoofed, say)
    pile up faster than they expire. ``allowed_sources``: IPs or CIDR networks a SIP
    request must come from (403 otherwise) and RTP may be sent to; None admits anyone.
    ``retry_after_s``: the Retry-After of every 503 (seconds). Raises ``ValueError`` for
    a negative ``retry_after_s`` or a ``max_dialogs`` below ``max_calls``."""

    dialog: DialogConfig
    max_calls: int = 10
    max_dialogs: int | None = None
    allowed_sources: tuple[str, ...] | None = None
    retry_after_s: int = 5

    def __post_init__(self) -> None:
        if self.retry_after_s < 0:
            raise ValueError(f"retry_after_s must be >= 0, got {self.retry_after_s}")
        if self.max_dialogs is not None and self.max_dialogs < max(1, self.max_calls):
            raise ValueError(
                f"max_dialogs ({self.max_dialogs}) must be >= max_calls ({self.max_calls})"
            )

    @property
    def dialog_limit(self) -> int:
        """``max_dialogs``, or its default ``max(64, 8 * max_calls)``."""
        return self.max_dialogs if self.max_dialogs is not None else max(64, 8 * self.max_calls)


@dataclass(frozen=True, slots=True)
class EndpointStatistics:
    """Counters since the core was made. ``busy``: 503s for ``max_calls``;
    ``dialogs_full``: 503s for ``max_dialogs``; ``media_refused``, ``codec_refused``,
    ``sdp_refused``: offers refused statelessly for an unusable media address (488), no
    common codec (488), an SDP that does not parse (400); ``unroutable``: datagrams from a
    source we cannot answer (dropped); ``dialogs``: kept now (active and ended)."""

    datagrams: int
    malformed: int
    bad_requests_answered: int
    forbidden: int
    busy: int
    dialogs_full: int
    media_refused: int
    codec_refused: int
    sdp_refused: int
    unroutable: int
    calls_total: int
    calls_active: int
    dialogs: int
    internal_errors: int


class SipEndpointCore:
    """Routes datagrams to dialogs and applies endpoint policy. See the module docstring.

    ``token_factory`` makes To tags (default: 64 random bits from ``secrets``); tests
    pass a deterministic one.
    """

    def __init__(
        self, config: EndpointConfig, *, token_factory: Callable[[], str] | None = None
    ) -> None:
        self.config = config
        self._tokens = token_factory or (lambda: secrets.token_hex(8))
        self._dialog_limit = config.dialog_limit
        self._allowlist = Allowlist(config.allowed_sources)
        self._dialogs: dict[str, UasDialog] = {}
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: list[DialogNotification] = []
        self._datagrams = self._malformed = self._answered_400 = 0
        self._forbidden = self._busy = self._calls_total = self._internal_errors = 0
        self._media_refused = self._codec_refused = self._sdp_refused = 0
        self._dialogs_full = self._unroutable = 0

    # -- outputs -------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Datagrams queued since the last call, in order; send them all."""
        out, self._outbox = self._outbox, []
        return out

    def events_received(self) -> list[DialogNotification]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must run next, or None."""
        deadlines = [
            d for d in (x.next_deadline() for x in self._dialogs.values()) if d is not None
        ]
        return min(deadlines, default=None)

    def statistics(self) -> EndpointStatistics:
        return EndpointStatistics(
            datagrams=self._datagrams,
            malformed=self._malformed,
            bad_requests_answered=self._answered_400,
            forbidden=self._forbidden,
            busy=self._busy,
            dialogs_full=self._dialogs_full,
            media_refused=self._media_refused,
            codec_refused=self._codec_refused,
            sdp_refused=self._sdp_refused,
            unroutable=self._unroutable,
            calls_total=self._calls_total,
            calls_active=self.active_calls,
            dialogs=len(self._dialogs),
            internal_errors=self._internal_errors,
        )

    @property
    def allowlist(self) -> Allowlist:
        """The parsed ``allowed_sources`` (for RTP latching: see :class:`~.addresses.RtpLatch`)."""
        return self._allowlist

    @property
    def active_calls(self) -> int:
        return sum(1 for d in self._dialogs.values() if d.is_active)

    def dialog(self, call_id: str) -> UasDialog:
        """The dialog for ``call_id`` (for inspection); raises UnknownCallError."""
        try:
            return self._dialogs[call_id]
        except KeyError:
            raise UnknownCallError(f"no call with Call-ID {call_id!r}") from None

    # -- application commands ------------------------------------------------------

    def answer(self, call_id: str, sdp: bytes, now: float) -> None:
        dialog = self.dialog(call_id)
        dialog.answer(sdp, now)
        self._collect(dialog)

    def reject(
        self,
        call_id: str,
        status: int,
        now: float,
        reason: str | None = None,
        *,
        warning: str | None = None,
    ) -> None:
        """Send a final error response to the INVITE. A 503 gets ``Retry-After``;
        ``warning`` (one line of text) goes into a ``Warning: 399`` header."""
        dialog = self.dialog(call_id)
        headers = self._status_headers(status)
        if warning:
            headers.append(("Warning", _warning(399, warning)))
        dialog.reject(status, now, reason, headers=headers)
        self._collect(dialog)

    def hangup(self, call_id: str, now: float, reason: str = "hangup") -> None:
        """End a call from our side; a no-op for a call already ending or gone."""
        dialog = self._dialogs.get(call_id)
        if dialog is not None:
            dialog.hangup(now, reason)
            self._collect(dialog)

    # -- input -----------------------------------------------------------------------

    def handle_timeout(self, now: float) -> None:
        """Run every due dialog timer and forget dialogs past their linger time."""
        for call_id, dialog in list(self._dialogs.items()):
            deadline = dialog.next_deadline()
            if deadline is not None and now >= deadline:
                dialog.handle_timeout(now)
                self._collect(dialog)
            if dialog.is_expired(now):
                del self._dialogs[call_id]

    def _forget_expired(self, now: float) -> None:
        """Drop dialogs past their linger time whose timer has not run yet."""
        for call_id in [c for c, d in self._dialogs.items() if d.is_expired(now)]:
            del self._dialogs[call_id]

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        """Process one datagram from ``source``. Never raises."""
        self._datagrams += 1
        try:
            self._receive(data, source, now)
        except Exception:  # containment, not control flow: see statistics()
            self._internal_errors += 1

    def _receive(self, data: bytes, source: Address, now: float) -> None:
        if ip_literal(source[0]) is None:
            # A source we could only answer through a name lookup (an IPv6 zone such as
            # "fe80::1%eth0" sends through getaddrinfo): never answered.
            self._unroutable += 1
            return
        if not data.strip(b"\r\n\t "):
            return  # keep-alive (RFC 5626 CRLF ping): nothing to do
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self._malformed += 1
            self._answer_malformed(data, source, str(exc))
            return
        if isinstance(message, SipResponse):
            dialog = self._dialogs.get(message.call_id)
            if dialog is not None and message.from_addr.tag == dialog.local_tag:
                dialog.receive_response(message, now)
                self._collect(dialog)
            return
        via = message.top_via.stamped(source)
        values = message.headers.get_all("via")
        message.headers.remove("via")
        message.headers.add("via", via.to_str())
        for value in values[1:]:
            message.headers.add("via", value)
        self._receive_request(message, source, now)

    def _receive_request(self, request: SipRequest, source: Address, now: float) -> None:
        addr = request.top_via.response_address(source)
        if not self._allowed(source[0]):
            self._forbidden += 1
            if request.method != "ACK":
                self._send(build_response(request, 403), addr)
            return
        if request.method not in ("ACK", "CANCEL"):
            required = request.headers.get_all("require")
            if required:  # §8.2.2.3: we implement no extension, so any Require is unknown
                unsupported = [("Unsupported", ", ".join(required))]
                self._send(build_response(request, 420, headers=unsupported), addr)
                return
        dialog = self._dialogs.get(request.call_id)
        if dialog is not None:
            if (request.from_addr.tag or "") == dialog.remote_tag:
                dialog.receive_request(request, source, now)
                self._collect(dialog)
            elif request.method == "INVITE" and request.to_addr.tag is None:
                self._send(build_response(request, 482), addr)  # same Call-ID, other caller
            elif request.method != "ACK":
                self._send(build_response(request, 481), addr)
            return
        self._receive_out_of_dialog(request, source, addr, now)

    def _receive_out_of_dialog(
        self, request: SipRequest, source: Address, addr: Address, now: float
    ) -> None:
        method = request.method
        if method == "ACK":
            return  # ACK to a stateless 4xx/5xx of ours, or stray: nothing to answer
        if method == "INVITE" and request.to_addr.tag is None:
            refusal = _refuse_offer(request) or self._refuse_sdp(request)
            if refusal is not None:
                self._send(refusal, addr)
            elif self.active_calls >= self.config.max_calls:
                self._busy += 1
                self._send(build_response(request, 503, headers=self._status_headers(503)), addr)
            elif not self._room_for_a_dialog(now):
                self._dialogs_full += 1
                self._send(build_response(request, 503, headers=self._status_headers(503)), addr)
            else:
                self._new_call(request, source, now)
        elif method == "OPTIONS":
            headers = [("Allow", self.config.dialog.allow), ("Accept", "application/sdp")]
            self._send(build_response(request, 200, headers=headers), addr)
        elif method in ("INVITE", "BYE", "CANCEL") or request.to_addr.tag is not None:
            self._send(build_response(request, 481), addr)
        else:
            self._send(method_not_allowed_or_implemented(request, self.config.dialog.allow), addr)

    def _new_call(self, invite: SipRequest, source: Address, now: float) -> None:
        dialog = UasDialog(invite, source, now, config=self.config.dialog, local_tag=self._tokens())
        self._dialogs[invite.call_id] = dialog
        self._calls_total += 1
        self._collect(dialog)

    # -- helpers ---------------------------------------------------------------------

    def _allowed(self, ip: str) -> bool:
        return self._allowlist.allows(ip)

    def _room_for_a_dialog(self, now: float) -> bool:
        if len(self._dialogs) >= self._dialog_limit:
            self._forget_expired(now)  # only at the bound: the timer may not have run yet
        return len(self._dialogs) < self._dialog_limit

    def _status_headers(self, status: int) -> list[tuple[str, str]]:
        """Headers every response with ``status`` carries, whoever decided it."""
        if status == 503:
            return [("Retry-After", str(self.config.retry_after_s))]
        return []

    def _refuse_sdp(self, invite: SipRequest) -> SipResponse | None:
        """The stateless answer to an offer no application could take, else None: 400
        when the SDP does not parse, 488 when an audio stream of it would send RTP to an
        unusable address or when no stream has a codec we speak. (An address outside the
        allowlist is not a refusal: see :class:`~.addresses.RtpLatch`.)"""
        try:
            offer = parse_sdp(invite.body)
        except SdpParseError as exc:
            self._sdp_refused += 1
            return build_response(invite, 400, headers=[("Warning", _warning(399, str(exc)))])
        for host in media_hosts(offer):
            problem = media_address_problem(host)
            if problem is not None:
                self._media_refused += 1
                # RFC 3261 §20.43: 301 incompatible network address formats
                warning = _warning(301, f"media address {host!r} {problem}")
                return build_response(invite, 488, headers=[("Warning", warning)])
        try:
            negotiate(offer)
        except SdpNotAcceptableError as exc:
            self._codec_refused += 1
            # RFC 3261 §20.43: 305 incompatible media format
            return build_response(invite, 488, headers=[("Warning", _warning(305, str(exc)))])
        return None

    def _collect(self, dialog: UasDialog) -> None:
        for out in dialog.messages_to_send():
            self._outbox.append((out.to_bytes(), out.addr))
        self._events.extend(dialog.events_received())

    def _send(self, response: SipResponse, addr: Address) -> None:
        response.headers.add("server", self.config.dialog.user_agent)
        self._outbox.append((response.to_bytes(), addr))

    def _answer_malformed(self, data: bytes, source: Address, error: str) -> None:
        """Answer 400 if the datagram is a request whose routing headers we can read."""
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        lines = [ln.rstrip("\r") for ln in head.decode("utf-8", "replace").split("\n")]
        match = _REQUEST_LINE.match(lines[0].lstrip("\r\n")) if lines else None
        if match is None or match.group(1).upper() == "ACK" or not self._allowed(source[0]):
            return
        found: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            key = canonical_name(name)
            if sep and key in _SALVAGED and "\r" not in value:
                found.setdefault(key, []).append(value.strip())
        if any(not found.get(name) for name in _SALVAGED):
            return
        headers = Headers((name, value) for name in _SALVAGED for value in found[name])
        headers.add("warning", _warning(399, error))
        headers.add("server", self.config.dialog.user_agent)
        data = SipResponse(headers=headers, status=400, reason="Bad Request").to_bytes()
        try:
            # Only answer with a response the peer can parse and that we can address:
            # a 400 echoing a broken Via or CSeq would be garbage in its turn.
            parse_message(data)
            addr = parse_via(found["via"][0]).stamped(source).response_address(source)
        except SipParseError:
            return
        self._outbox.append((data, addr))
        self._answered_400 += 1


def _warning(code: int, text: str) -> str:
    """A Warning header value (§20.43): its text kept to printable ASCII, no quote or
    backslash (it is a quoted-string), at most 120 characters."""
    return f'{code} voxlane "{_UNQUOTABLE.sub("", text)[:120]}"'


def _refuse_offer(invite: SipRequest) -> SipResponse | None:
    """415 for a non-SDP body, 488 for no body (late offer is not supported), else None."""
    if not invite.body:
        warning = [("Warning", '399 voxlane "INVITE without SDP offer is not supported"')]
        return build_response(invite, 488, headers=warning)
    content_type = (invite.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        return build_response(invite, 415, headers=[("Accept", "application/sdp")])
    return None
