"""Sans-I/O SIP user agent server, SDP offer/answer, RTP and G.711 for voxlane.

Everything in this package is pure and synchronous: no sockets, no asyncio, no clock
reads (``now`` is passed in), no threads. The asyncio UDP/RTP layer drives it:
:class:`SipEndpointCore` for signalling, :class:`JitterBuffer` / :class:`RtpSender` /
:class:`RtpActivity` and :mod:`.g711` for media, :mod:`.sdp` between the two.
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
    NoCommonCodecError,
    RtpParseError,
    SdpError,
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
    "NoCommonCodecError",
    "Outgoing",
    "RtpActivity",
    "RtpPacket",
    "RtpParseError",
    "RtpSender",
    "SdpError",
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
