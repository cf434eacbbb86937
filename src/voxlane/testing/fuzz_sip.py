"""The SIP/SDP fuzz campaign: mutated datagrams through the pure SIP stack, on virtual time.

``run_sip_campaign(seed, cases)`` derives case ``i`` from ``(seed, i)`` alone
(:func:`sip_case`): a corpus message (an INVITE with its SDP, in-dialog requests for a
call that is up, a response to our BYE, OPTIONS, ...) mutated by :class:`SipMutator` —
the shared byte and line mutations of :mod:`voxlane.testing.fuzz` plus SIP/SDP-aware
ones (duplicated headers, numeric fields set to -1, 2**32, huge or non-ASCII digits,
Content-Length lies, LF/CR line ends, folded lines, huge headers, garbage ``c=`` and
``m=`` lines with Content-Length fixed up so they reach the SDP code). Each case checks:

* :func:`parse_message` raises nothing but ``SipParseError``, and what it returns
  re-serializes to a message that parses;
* :func:`parse_sdp` raises nothing but ``SdpParseError`` and :func:`negotiate` nothing
  but ``SdpError``; a negotiation's host is an IP literal and its answer negotiates;
* ``SipEndpointCore.receive_datagram`` never raises and counts no internal error, with a
  call up and the datagram delivered twice (a retransmission); every datagram the core
  sends parses, goes to an IP literal, and carries Retry-After when it is a 503;
* every dialog ends once its timers have run (virtual time: ``now`` jumps to each
  deadline), and a valid call afterwards still goes INVITE → 200 → ACK → BYE → 200.

No sockets, no threads, no clock (but to time the report): a failure replays from its
index alone, ``sip_case(seed, index)``.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence

from voxlane.testing.fuzz import FuzzCase, FuzzFailure, FuzzReport, Mutator
from voxlane.testing.fuzz import case as fuzz_case
from voxlane.transports.sip.addresses import ip_literal
from voxlane.transports.sip.common import Address, DialogConfig
from voxlane.transports.sip.dialog import (
    CallConfirmed,
    CallOffered,
    CallTerminated,
    DialogNotification,
)
from voxlane.transports.sip.endpoint import EndpointConfig, SipEndpointCore
from voxlane.transports.sip.errors import (
    SdpError,
    SdpNotAcceptableError,
    SdpParseError,
    SipParseError,
)
from voxlane.transports.sip.message import SipRequest, SipResponse, parse_message
from voxlane.transports.sip.sdp import build_answer, negotiate, parse_sdp

__all__ = ["SDP_CORPUS", "SIP_CORPUS", "SipMutator", "run_sip_campaign", "sip_case", "sip_cases"]

CALLER: Address = ("127.0.0.1", 5061)
STEADY = "fuzz-steady"  # the call that is up while each case's datagram arrives
_STEADY_TAG = "fuzz1"  # our To tag for it: the first tag of the core's token factory
_MANAGED = frozenset({STEADY, "fuzz-after"})  # calls each case drives itself
_MAX_TIMER_STEPS = 2000  # per case; every dialog's timers end long before


def _sdp(host: str = "127.0.0.1", formats: str = "0 8 101", extra: str = "") -> bytes:
    lines = [
        "v=0", f"o=fuzz 1 1 IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0",
        f"m=audio 6000 RTP/AVP {formats}", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n" + extra).encode()


def _message(start: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [start, *(f"{name}: {value}" for name, value in headers)]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _request(
    method: str,
    call_id: str,
    cseq: int,
    *,
    to_tag: str | None = None,
    branch: str | None = None,
    body: bytes = b"",
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    to = "<sip:agent@127.0.0.1:5060>" + (f";tag={to_tag}" if to_tag else "")
    headers = [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:5061;branch={branch or f'z9hG4bK-{method}{cseq}'}"),
        ("Max-Forwards", "70"),
        ("From", "fuzz <sip:fuzz@127.0.0.1:5061>;tag=caller1"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", "<sip:fuzz@127.0.0.1:5061>"),
        *extra,
    ]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return _message(f"{method} sip:agent@127.0.0.1:5060 SIP/2.0", headers, body)


def _invite(call_id: str, body: bytes | None = None) -> bytes:
    return _request("INVITE", call_id, 1, branch=f"z9hG4bK-{call_id}", body=body or _sdp())


_COMPACT_INVITE = _message(
    "INVITE sip:agent@127.0.0.1 SIP/2.0",
    [("v", "SIP/2.0/UDP 127.0.0.1:5061;rport;branch=z9hG4bK-compact"),
     ("f", '"Fuzz \\"Q\\"" <sip:fuzz@127.0.0.1>;tag=c2'), ("t", "<sip:agent@127.0.0.1>"),
     ("i", "compact-1"), ("CSeq", "314159 INVITE"), ("m", "<sip:fuzz@127.0.0.1:5061>"),
     ("c", "application/sdp"), ("Allow", "INVITE, ACK, BYE,\r\n CANCEL, OPTIONS")],
    _sdp(formats="96 8 0 101", extra="a=rtpmap:96 opus/48000/2\r\nm=video 0 RTP/AVP 96\r\n"),
)  # fmt: skip

SDP_CORPUS: tuple[bytes, ...] = (
    _sdp(),
    _sdp(formats="8"),
    _sdp("192.0.2.10", "96 97 0 100", "a=rtpmap:96 opus/48000/2\r\na=rtpmap:100 "
         "telephone-event/8000\r\na=rtcp-fb:* ccm tmmbr\r\na=sendonly\r\n"),
    b"v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n"
    b"c=IN IP6 ::1\r\nm=audio 6002 RTP/AVPF 0\r\nc=IN IP6 2001:db8::2\r\n",
)  # fmt: skip

SIP_CORPUS: tuple[bytes, ...] = (
    _invite("fuzz-new"),
    *(_invite(f"fuzz-sdp-{i}", body) for i, body in enumerate(SDP_CORPUS[1:])),
    _COMPACT_INVITE,
    _request("ACK", STEADY, 1, to_tag=_STEADY_TAG),
    _request("BYE", STEADY, 2, to_tag=_STEADY_TAG),
    _request("INVITE", STEADY, 3, to_tag=_STEADY_TAG, body=_sdp()),  # session refresh
    _request("INFO", STEADY, 4, to_tag=_STEADY_TAG),
    _request("CANCEL", STEADY, 1, branch=f"z9hG4bK-{STEADY}"),
    _request("OPTIONS", "fuzz-probe", 1, extra=(("Via", "SIP/2.0/UDP 10.0.0.1\r\n ;branch=z9"),)),
    _request("REGISTER", "fuzz-reg", 1, extra=(("Expires", "3600"),)),
    _request("BREW", "fuzz-brew", 1, extra=(("Require", "100rel"),)),
    _message(  # the caller's 200 to our BYE
        "SIP/2.0 200 OK",
        [("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-{_STEADY_TAG}-1;rport"),
         ("From", f"<sip:agent@127.0.0.1:5060>;tag={_STEADY_TAG}"),
         ("To", "fuzz <sip:fuzz@127.0.0.1:5061>;tag=caller1"), ("Call-ID", STEADY),
         ("CSeq", "1 BYE")],
    ),
    b"\r\n\r\n",
)  # fmt: skip

# -- mutations -----------------------------------------------------------------------------

_NUMERIC_FIELD = re.compile(
    rb"(?:CSeq: |Content-Length: |Max-Forwards: |Expires: |:5061|rport=|m=audio |"
    rb"rtpmap:|ptime:|RTP/AVP |/8000)(\d+)"
)
_NUMBERS = (b"-1", b"0", b"4294967296", b"18446744073709551616", b"9" * 40, b"2147483648",
            b"\xc2\xb2", "١٢".encode(), b"1e3", b"0x10", b" 7", b"", b"abc")  # fmt: skip
_CONNECTIONS = (
    b"c=IN IP4 example.invalid", b"c=IN IP4 0.0.0.0", b"c=IN IP6 ::", b"c=IN IP4 224.0.0.1/255/3",
    b"c=IN IP4 256.1.1.1", b"c=IN IP4 ", b"c=IN", b"c=IN IP4 1.2.3.4 extra", b"c=IN IP9 1.2.3.4",
    b"c=IN IP4 " + b"a" * 300, b"c=IN IP4 ::ffff:127.0.0.1", b"c=IN IP6 fe80::1%lo",
    b"c=IN IP4 255.255.255.255", b"c=IN IP4 192.0.2.1", b"c=IN IP4 \xff\xfe",
)  # fmt: skip
_VIA_EDITS = (
    b";received=example.invalid", b";received=192.0.2.99", b";rport=0", b";rport=99999",
    b";rport", b";rport=5062;received=example.invalid", b";maddr=224.0.0.1", b";branch=",
    b"sipp.example.invalid:5061", b"[::1]:5061", b"127.0.0.1:0", b"127.0.0.1:65536",
    b"[fe80::1%lo]", b"127.0.0.1:5061 ; rport = 7",
)  # fmt: skip
_MEDIA = (
    b"m=audio -1 RTP/AVP 0", b"m=audio 65536 RTP/AVP 0", b"m=audio 6000/2 RTP/AVP 0",
    b"m=audio 6000 RTP/AVP", b"m=audio 6000 RTP/AVP 999 -1 \xc2\xb2", b"m=audio 6000 RTP/SAVP 0",
    b"m=video 6000 RTP/AVP 0", b"m=audio 0 RTP/AVP 0", b"m= ", b"a=rtpmap:0 PCMU/-1",
    b"a=rtpmap:300 PCMU/8000", b"a=ptime:0", b"a=fmtp:101", b"a=rtpmap:0", b"a=inactive",
    b"m=audio 6000 RTP/AVP 0\r\n" * 200,
)  # fmt: skip


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def _join(lines: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class SipMutator(Mutator):
    """:class:`~voxlane.testing.fuzz.Mutator` plus SIP/SDP-aware mutations (module
    docstring); deterministic for its seed."""

    def __init__(self, seed: int, corpus: Sequence[bytes] = SIP_CORPUS) -> None:
        super().__init__(seed, corpus)
        self._ops += [
            self._duplicate_header,
            self._numeric_field,
            self._content_length_lie,
            self._line_ends,
            self._fold_line,
            self._huge_header,
            self._connection_line,
            self._media_line,
            self._header_name,
            self._via,
        ]

    def _duplicate_header(self, data: bytes) -> bytes:
        lines, body = _split(data)
        if len(lines) < 2:
            return data
        i = self.rng.randrange(1, len(lines))
        lines[i:i] = [lines[i]] * self.rng.choice((1, 1, 2, 50))
        return _join(lines, body)

    def _numeric_field(self, data: bytes) -> bytes:
        fields = list(_NUMERIC_FIELD.finditer(data))
        if not fields:
            return self._replace_number(data)
        m = self.rng.choice(fields)
        return data[: m.start(1)] + self.rng.choice(_NUMBERS) + data[m.end(1) :]

    def _content_length_lie(self, data: bytes) -> bytes:
        lines, body = _split(data)
        lines = [ln for ln in lines if not ln.lower().startswith(b"content-length")]
        lie = self.rng.choice((-1, 1, -len(body), 1000, 10**12))
        lines.append(b"Content-Length: %d" % max(0, len(body) + lie))
        if self.rng.random() < 0.3:
            lines.append(b"l: %d" % len(body))  # a second, compact, disagreeing one
        return _join(lines, body)

    def _line_ends(self, data: bytes) -> bytes:
        choice = self.rng.randrange(4)
        if choice == 0:
            return data.replace(b"\r\n", b"\n")
        if choice == 1:
            return data.replace(b"\r\n", b"\n", self.rng.randint(1, 6))
        if choice == 2:
            return data.replace(b"\r\n", b"\r", 1)
        return data.replace(b"\r\n", b"\n\r", 1)

    def _fold_line(self, data: bytes) -> bytes:
        lines, body = _split(data)
        i = self.rng.randrange(len(lines))
        cut = lines[i].find(b" ", lines[i].find(b":") + 2)
        if cut > 0:
            fold = self.rng.choice((b"\r\n ", b"\r\n\t", b"\r\n  \r\n "))
            lines[i] = lines[i][:cut] + fold + lines[i][cut:]
        return _join(lines, body)

    def _huge_header(self, data: bytes) -> bytes:
        lines, body = _split(data)
        pick = self.rng.randrange(3)
        if pick == 0:
            extra = [b"X-Fuzz: " + b"a" * self.rng.randint(1000, 65000)]
        elif pick == 1:
            extra = [b"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-many"] * 300
        else:
            extra = [b"Route: <sip:r@10.0.0.1" + b";lr" * 2000 + b">"]
        lines[self.rng.randint(1, len(lines)) : 0] = extra
        return _join(lines, body)

    def _with_body(self, data: bytes, body: bytes) -> bytes:
        """``data`` with ``body``, Content-Length fixed up (mostly) so the SDP is read."""
        lines, _ = _split(data)
        if self.rng.random() < 0.85:
            length = b"Content-Length: %d" % len(body)
            lines = [length if ln.lower().startswith(b"content-length") else ln for ln in lines]
        return _join(lines, body)

    def _sdp_line(self, data: bytes, kind: bytes, garbage: tuple[bytes, ...]) -> bytes:
        _, body = _split(data)
        sdp = body.split(b"\r\n") if body else list(SDP_CORPUS[0].split(b"\r\n"))
        found = [i for i, line in enumerate(sdp) if line.startswith(kind)]
        i = self.rng.choice(found) if found else self.rng.randint(0, len(sdp))
        sdp[i : i + (1 if found and self.rng.random() < 0.7 else 0)] = [self.rng.choice(garbage)]
        return self._with_body(data, b"\r\n".join(sdp))

    def _connection_line(self, data: bytes) -> bytes:
        return self._sdp_line(data, b"c=", _CONNECTIONS)

    def _media_line(self, data: bytes) -> bytes:
        return self._sdp_line(data, self.rng.choice((b"m=", b"a=")), _MEDIA)

    def _via(self, data: bytes) -> bytes:
        """Via parameters and sent-by that would steer responses (or make us resolve)."""
        prefix = b"Via: SIP/2.0/UDP "
        at = data.find(prefix)
        if at < 0:
            return self._duplicate_header(data)
        start, end = at + len(prefix), data.find(b"\r\n", at)
        end = len(data) if end < 0 else end
        edit = self.rng.choice(_VIA_EDITS)
        if edit.startswith(b";"):  # one more parameter
            return data[:end] + edit + data[end:]
        semicolon = data.find(b";", start, end)  # a new sent-by, parameters kept
        return data[:start] + edit + data[semicolon if semicolon >= 0 else end :]

    def _header_name(self, data: bytes) -> bytes:
        lines, body = _split(data)
        if len(lines) < 2:
            return data
        i = self.rng.randrange(1, len(lines))
        name, sep, value = lines[i].partition(b":")
        new = self.rng.choice((name.lower(), name.upper(), name + b" ", b" " + name, b"", b"X@"))
        lines[i] = new + sep + value
        return _join(lines, body)


def sip_case(seed: int, index: int) -> FuzzCase:
    """Case ``index`` of the SIP campaign ``seed`` (as :func:`voxlane.testing.fuzz.case`
    derives its cases, with :class:`SipMutator`)."""
    return fuzz_case(SIP_CORPUS, seed, index, SipMutator)


def sip_cases(seed: int, count: int) -> Iterator[FuzzCase]:
    for index in range(count):
        yield sip_case(seed, index)


# -- checks ------------------------------------------------------------------------------


class CheckFailed(Exception):
    """A campaign invariant does not hold; the message says which (one line)."""


def check_outgoing(datagrams: list[tuple[bytes, Address]]) -> list[SipRequest | SipResponse]:
    """Every datagram the core sends parses, goes to an IP literal, and is a 503 only with
    Retry-After. Returns the parsed messages; raises :class:`CheckFailed`."""
    out = []
    for data, addr in datagrams:
        if ip_literal(addr[0]) is None or not 0 < addr[1] < 65536:
            raise CheckFailed(f"datagram addressed to {addr!r}")
        try:
            message = parse_message(data)
        except SipParseError as exc:
            raise CheckFailed(f"sent a datagram that does not parse: {exc}") from None
        busy = isinstance(message, SipResponse) and message.status == 503
        if busy and message.headers.get("retry-after") is None:
            raise CheckFailed("503 without Retry-After")
        out.append(message)
    return out


def _check_parsers(data: bytes, coverage: Counter[str]) -> None:
    try:
        message = parse_message(data)
    except SipParseError:
        coverage["sip_malformed"] += 1
        message = None
    if message is not None:
        coverage["sip_parsed"] += 1
        again = parse_message(message.to_bytes())
        if type(again) is not type(message) or again.body != message.body:
            raise CheckFailed("re-serialized message differs")
    body = message.body if message is not None else data.partition(b"\r\n\r\n")[2]
    try:
        offer = parse_sdp(body)
    except SdpParseError:
        return
    coverage["sdp_parsed"] += 1
    try:
        chosen = negotiate(offer)
    except SdpError:
        coverage["sdp_refused"] += 1
        return
    if ip_literal(chosen.remote_host) is None:
        raise CheckFailed(f"negotiated host {chosen.remote_host!r} is not an IP literal")
    answer = build_answer(chosen, local_ip="127.0.0.1", local_port=40000, session_id=1)
    if negotiate(parse_sdp(answer)).remote_port != 40000:
        raise CheckFailed("our SDP answer does not negotiate")
    coverage["sdp_negotiated"] += 1


class _Harness:
    """One fresh endpoint core on virtual time. Calls in :data:`_MANAGED` are driven by
    the case itself (their events are kept in ``events``); any other call the fuzzed
    datagram starts is answered or rejected as an application would."""

    def __init__(self, *, restricted: bool, busy: bool) -> None:
        self.busy = busy  # turn new calls away with 503 (the worker-full path)
        tags = itertools.count(1)
        self.core = SipEndpointCore(
            EndpointConfig(
                dialog=DialogConfig(local_host="127.0.0.1", local_port=5060),
                max_calls=3,
                allowed_sources=("127.0.0.0/8", "192.0.2.0/24") if restricted else None,
            ),
            token_factory=lambda: f"fuzz{next(tags)}",
        )
        self.now = 0.0
        self.events: list[DialogNotification] = []

    def deliver(self, data: bytes, coverage: Counter[str]) -> list[SipRequest | SipResponse]:
        try:
            self.core.receive_datagram(data, CALLER, self.now)
        except Exception as exc:  # the contract: never raises
            raise CheckFailed(f"receive_datagram raised {type(exc).__name__}: {exc}") from exc
        return self.pump(coverage)

    def pump(self, coverage: Counter[str]) -> list[SipRequest | SipResponse]:
        """Check what the core sends; act on the events of calls the case does not drive."""
        out = check_outgoing(self.core.datagrams_to_send())
        for event in self.core.events_received():
            if event.call_id in _MANAGED:
                self.events.append(event)
            elif isinstance(event, CallOffered):
                coverage["offered"] += 1
                self._decide(event)
                out += check_outgoing(self.core.datagrams_to_send())
        for message in out:
            if isinstance(message, SipResponse):
                coverage[f"status_{message.status}"] += 1
        if self.core.statistics().internal_errors:
            raise CheckFailed("the endpoint counted an internal error")
        return out

    def _decide(self, offer: CallOffered) -> None:
        try:
            chosen = negotiate(parse_sdp(offer.invite.body))
        except SdpError as exc:
            status = 488 if isinstance(exc, SdpNotAcceptableError) else 400
            self.core.reject(offer.call_id, status, self.now, warning=str(exc))
            return
        if self.busy:
            self.core.reject(offer.call_id, 503, self.now)
            return
        answer = build_answer(chosen, local_ip="127.0.0.1", local_port=40000, session_id=2)
        self.core.answer(offer.call_id, answer, self.now)

    def advance(self, until: float, coverage: Counter[str]) -> None:
        """Virtual time: jump to each deadline up to ``until`` (run its timers), then to
        ``until``. A deadline that does not move forward fails the case."""
        for _ in range(_MAX_TIMER_STEPS):
            deadline = self.core.next_deadline()
            if deadline is None or deadline > until:
                self.now = max(self.now, until)
                return
            if deadline < self.now - 1e-9:
                raise CheckFailed(f"deadline {deadline} is in the past (now {self.now})")
            self.now = max(self.now, deadline)
            self.core.handle_timeout(self.now)
            self.pump(coverage)
        raise CheckFailed(f"timers still due after {_MAX_TIMER_STEPS} steps")

    def run_timers(self, coverage: Counter[str]) -> None:
        """Run every timer to its end; then every dialog must be gone."""
        self.advance(float("inf"), coverage)
        if self.core.statistics().dialogs:
            raise CheckFailed(f"{self.core.statistics().dialogs} dialogs outlived their timers")

    def call(self, call_id: str, coverage: Counter[str]) -> str | None:
        """Set up a valid call to CONFIRMED; our To tag, or None if it was refused."""
        out = self.deliver(_invite(call_id), coverage)
        if [m.status for m in out if isinstance(m, SipResponse)] != [100]:
            return None
        offers = [e for e in self.events if isinstance(e, CallOffered) and e.call_id == call_id]
        if len(offers) != 1:
            raise CheckFailed(f"call {call_id}: {len(offers)} CallOffered events")
        chosen = negotiate(parse_sdp(offers[0].invite.body))
        sdp = build_answer(chosen, local_ip="127.0.0.1", local_port=40000, session_id=3)
        self.core.answer(call_id, sdp, self.now)
        ok = self.pump(coverage)
        if len(ok) != 1 or not isinstance(ok[0], SipResponse) or ok[0].status != 200:
            raise CheckFailed(f"call {call_id}: no 200 OK")
        tag = ok[0].to_addr.tag
        self.deliver(_request("ACK", call_id, 1, to_tag=tag), coverage)
        if CallConfirmed(call_id) not in self.events:
            raise CheckFailed(f"call {call_id}: the ACK did not confirm it")
        return tag


def _run_case(data: bytes, index: int, coverage: Counter[str]) -> None:
    _check_parsers(data, coverage)
    harness = _Harness(restricted=index % 2 == 1, busy=index % 3 == 0)
    if harness.call(STEADY, coverage) != _STEADY_TAG:
        raise CheckFailed("the steady call could not be set up")
    for now in (1.0, 1.5):  # the datagram, then a retransmission of it
        harness.advance(now, coverage)
        harness.deliver(data, coverage)
    harness.advance(2.0, coverage)
    harness.core.hangup(STEADY, harness.now)  # our BYE: the datagram again, mid-BYE
    harness.pump(coverage)
    harness.advance(2.1, coverage)
    harness.deliver(data, coverage)
    harness.run_timers(coverage)
    # Whatever happened, the endpoint still takes a call, start to end.
    tag = harness.call("fuzz-after", coverage)
    if tag is None:
        raise CheckFailed("a valid call after the case was refused")
    out = harness.deliver(_request("BYE", "fuzz-after", 2, to_tag=tag), coverage)
    if [m.status for m in out if isinstance(m, SipResponse)] != [200]:
        raise CheckFailed("the BYE of a valid call after the case got no 200")
    if CallTerminated("fuzz-after", "bye") not in harness.events:
        raise CheckFailed("the valid call after the case did not end on its BYE")


def run_sip_campaign(seed: int, cases: int, *, coverage: Counter[str] | None = None) -> FuzzReport:
    """Run cases ``0 .. cases-1`` of campaign ``seed`` (module docstring); pure, no
    sockets. ``coverage`` (optional) counts what the cases reached: ``sip_parsed``,
    ``sdp_negotiated``, ``offered``, ``status_488``, ..."""
    counts = coverage if coverage is not None else Counter()
    report = FuzzReport("sip", seed)
    started = time.perf_counter()  # the report's duration only: nothing waits on it
    for case in sip_cases(seed, cases):
        try:
            _run_case(case.data, case.index, counts)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
            report.failures.append(FuzzFailure(case.index, case.data, error))
        report.cases += 1
    report.seconds = time.perf_counter() - started
    return report
