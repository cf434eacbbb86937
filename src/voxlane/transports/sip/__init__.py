"""Sans-I/O SIP user agent server, SDP offer/answer, RTP and G.711 for voxlane.

Everything in this package is pure and synchronous: no sockets, no asyncio, no clock
reads (``now`` is passed in), no threads. The asyncio UDP/RTP layer drives it::

    core = SipEndpointCore(EndpointConfig(dialog=DialogConfig(local_host=ip, local_port=5060)))
    # on each SIP datagram:   core.receive_datagram(data, addr, loop.time())
    # when due:               core.handle_timeout(loop.time())   (see core.next_deadline())
    # after either:           send core.datagrams_to_send(); handle core.events_received()
    #   CallOffered   → chosen = negotiate(parse_sdp(ev.invite.body))  (SdpNotAcceptableError: 488)
    #                   open an RTP socket; core.answer(call_id, build_answer(chosen, ...), now)
    #   CallConfirmed → start sending: RtpSender + g711.encode every 20 ms
    #   CallTerminated(reason) → stop media, close the RTP socket, close the Room
    # media in:  JitterBuffer.push(parse_rtp(data), now); RtpActivity.on_packet(now)
    #            pop() each 20 ms tick → g711.decode(pt, payload) → PCM16 8 kHz
    # hang up:   core.hangup(call_id, now, reason=...) (idempotent; also on RTP timeout)

That asyncio layer is in this package too, in modules the pure ones never import (and
which importing this package does not load): :mod:`.udp` (``SipSignaling``),
:mod:`.rtp_io` (``RtpStream``) and :mod:`.room` (``SipRoom``). What runs an agent session
per call on them (``SipServer``, ``serve_sip``) is a runner, above the transports:
:mod:`voxlane.runners.sip_server`. See docs/sip.md.

Errors: see :mod:`.errors` (one tree rooted at :class:`SipError`).
"""

from __future__ import annotations

from .common import Address, DialogConfig, Outgoing
from .dialog import (
    CallConfirmed,
    CallOffered,
    CallTerminated,
    DialogEvent,
    DialogNotification,
    DialogState,
    UasDialog,
)
from .endpoint import EndpointConfig, EndpointStatistics, SipEndpointCore
from .errors import (
    DialogStateError,
    MediaAddressError,
    NoCommonCodecError,
    RtpParseError,
    SdpError,
    SdpNotAcceptableError,
    SdpParseError,
    SipError,
    SipParseError,
    UnknownCallError,
)
from .message import Headers, SipRequest, SipResponse, build_response, parse_message
from .rtp import (
    JitterBuffer,
    JitterBufferStatistics,
    RtpActivity,
    RtpPacket,
    RtpSender,
    TelephoneEvent,
    parse_rtp,
    parse_telephone_event,
)
from .sdp import AudioNegotiation, SessionDescription, build_answer, negotiate, parse_sdp

__all__ = [
    "Address",
    "AudioNegotiation",
    "CallConfirmed",
    "CallOffered",
    "CallTerminated",
    "DialogConfig",
    "DialogEvent",
    "DialogNotification",
    "DialogState",
    "DialogStateError",
    "EndpointConfig",
    "EndpointStatistics",
    "Headers",
    "JitterBuffer",
    "JitterBufferStatistics",
    "MediaAddressError",
    "NoCommonCodecError",
    "Outgoing",
    "RtpActivity",
    "RtpPacket",
    "RtpParseError",
    "RtpSender",
    "SdpError",
    "SdpNotAcceptableError",
    "SdpParseError",
    "SessionDescription",
    "SipEndpointCore",
    "SipError",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "TelephoneEvent",
    "UasDialog",
    "UnknownCallError",
    "build_answer",
    "build_response",
    "negotiate",
    "parse_message",
    "parse_rtp",
    "parse_sdp",
    "parse_telephone_event",
]
