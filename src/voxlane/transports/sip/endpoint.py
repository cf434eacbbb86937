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
  New INVITEs beyond ``max_calls`` get 503, sources outside ``allowed_sources`` 403,
  requests for unknown dialogs 481, OPTIONS 200, unknown methods 405/501, any
  ``Require`` 420. A new INVITE must carry an ``application/sdp`` offer (415 for another
  body type, 488 without a body: no late offer), so every CallOffered has one to
  negotiate with :mod:`.sdp`. An offer whose audio streams' connection addresses
  (:func:`~.sdp.media_hosts`) are not usable IP literals, or lie outside
  ``allowed_sources``, is refused 488 with a Warning saying why
  (:mod:`.addresses`): no CallOffered, no dialog. (An SDP that does not parse is left
  to the application: it answers 400.)
* Every 503 carries ``Retry-After: retry_after_s``, whoever decides it: the call limit
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

from .addresses import Allowlist, media_address_problem
from .common import Address, DialogConfig, method_not_allowed_or_implemented
from .dialog import DialogNotification, UasDialog
from .errors import SdpParseError, SipParseError, UnknownCallError
from .headers import parse_via
from .message import (
    Headers,
    SipRequest,
    SipResponse,
    build_response,
    canonical_name,
    parse_message,
)
from .sdp import media_hosts, parse_sdp

__all__ = ["EndpointConfig", "EndpointStatistics", "SipEndpointCore"]

_REQUEST_LINE = re.compile(r"([A-Za-z]+) \S+ SIP/2\.0\s*$", re.IGNORECASE)
_SALVAGED = ("via", "from", "to", "call-id", "cseq")
_UNQUOTABLE = re.compile(r"[^ -!#-\[\]-~]")  # not printable ASCII, or '"' or '\\'


@dataclass(frozen=True, kw_only=True, slots=True)
class EndpointConfig:
    """Endpoint policy. ``allowed_sources``: IPs or CIDR networks, for the SIP source and
    the SDP's media addresses alike; None admits anyone. ``retry_after_s``: the
    Retry-After of every 503 (seconds)."""

    dialog: DialogConfig
    max_calls: int = 10
    allowed_sources: tuple[str, ...] | None = None
    retry_after_s: int = 5


@dataclass(frozen=True, slots=True)
class EndpointStatistics:
    datagrams: int
    malformed: int
    bad_requests_answered: int
    forbidden: int
    busy: int
    media_refused: int
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
        if config.retry_after_s < 0:
            raise ValueError(f"retry_after_s must be >= 0, got {config.retry_after_s}")
        self._allowlist = Allowlist(config.allowed_sources)
        self._dialogs: dict[str, UasDialog] = {}
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: list[DialogNotification] = []
        self._datagrams = self._malformed = self._answered_400 = 0
        self._forbidden = self._busy = self._calls_total = self._internal_errors = 0
        self._media_refused = 0

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
            media_refused=self._media_refused,
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

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        """Process one datagram from ``source``. Never raises."""
        self._datagrams += 1
        try:
            self._receive(data, source, now)
        except Exception:  # containment, not control flow: see statistics()
            self._internal_errors += 1

    def _receive(self, data: bytes, source: Address, now: float) -> None:
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
            refusal = _refuse_offer(request) or self._refuse_media(request)
            if refusal is not None:
                self._send(refusal, addr)
            elif self.active_calls >= self.config.max_calls:
                self._busy += 1
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

    def _status_headers(self, status: int) -> list[tuple[str, str]]:
        """Headers every response with ``status`` carries, whoever decided it."""
        if status == 503:
            return [("Retry-After", str(self.config.retry_after_s))]
        return []

    def _refuse_media(self, invite: SipRequest) -> SipResponse | None:
        """488 when an audio stream of the offer would send RTP to an unusable address."""
        try:
            offer = parse_sdp(invite.body)
        except SdpParseError:
            return None  # the application's negotiation answers 400
        for host in media_hosts(offer):
            problem = media_address_problem(host)
            code = 301  # RFC 3261 §20.43: incompatible network address formats
            if problem is None and self._allowlist.restricted and not self._allowed(host):
                problem, code = "is outside the allowed sources", 399
            if problem is not None:
                self._media_refused += 1
                warning = [("Warning", _warning(code, f"media address {host!r} {problem}"))]
                return build_response(invite, 488, headers=warning)
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
