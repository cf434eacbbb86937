"""Errors raised by the sans-I/O SIP/SDP/RTP layer.

One tree, rooted at :class:`SipError`::

    SipError                      anything this package raises on purpose
    ├── SipParseError             a datagram is not a well-formed SIP message
    ├── SdpError                  an SDP body cannot be used
    │   ├── SdpParseError         ... because it is malformed (answer 400)
    │   └── SdpNotAcceptableError ... because we cannot take the offer (answer 488)
    │       ├── NoCommonCodecError    it offers no codec we speak
    │       └── MediaAddressError     its media address is not a usable IP literal
    ├── RtpParseError             a datagram is not a well-formed RTP packet
    ├── DialogStateError          the application asked a dialog for something its
    │                             state does not allow (a bug in the caller)
    └── UnknownCallError          the application named a call the endpoint does not have

Errors caused by the *peer* (the first four) are expected at runtime and must be
handled by answering or dropping; :class:`DialogStateError` is a programming error
of the local application and names the offending event and state.
"""

from __future__ import annotations

__all__ = [
    "DialogStateError",
    "MediaAddressError",
    "NoCommonCodecError",
    "RtpParseError",
    "SdpError",
    "SdpNotAcceptableError",
    "SdpParseError",
    "SipError",
    "SipParseError",
    "UnknownCallError",
]


class SipError(Exception):
    """Base class of every error raised on purpose by ``voxlane.transports.sip``."""


class SipParseError(SipError):
    """A datagram is not a well-formed SIP message; the message says why."""


class SdpError(SipError):
    """An SDP body cannot be used."""


class SdpParseError(SdpError):
    """An SDP body is malformed."""


class SdpNotAcceptableError(SdpError):
    """A well-formed SDP offer we cannot take; answer the INVITE with 488 (the message
    is the reason, fit for a Warning header)."""


class NoCommonCodecError(SdpNotAcceptableError):
    """The SDP offer has no audio codec we support; answer the INVITE with 488."""


class MediaAddressError(SdpNotAcceptableError):
    """The offer's media address is unusable: not an IP literal (we never resolve names;
    an IPv6 zone counts as a name), unspecified, multicast or broadcast; answer the
    INVITE with 488. (An address outside the allowlist is not an error: RTP is then only
    sent once latched, see :class:`~.addresses.RtpLatch`.)"""


class RtpParseError(SipError):
    """A datagram is not a well-formed RTP packet."""


class DialogStateError(SipError):
    """An event is not allowed in the dialog's current state.

    Attributes:
        event: the event's name (e.g. ``"APP_ANSWER"``).
        state: the state's name at the time (e.g. ``"TERMINATED"``).
    """

    def __init__(self, event: str, state: str) -> None:
        super().__init__(f"can't handle event {event} in dialog state {state}")
        self.event = event
        self.state = state


class UnknownCallError(SipError):
    """The application named a Call-ID that the endpoint has no dialog for (any more)."""
