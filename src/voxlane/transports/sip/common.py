"""Small pieces shared by the dialog and the endpoint core: configuration, outgoing
messages with their destination, RFC 3261 retransmission timers. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from .message import SipRequest, SipResponse, build_response

__all__ = [
    "ALLOW",
    "Address",
    "DialogConfig",
    "Outgoing",
    "RetransmitTimer",
    "method_not_allowed_or_implemented",
]

Address = tuple[str, int]
"""A UDP address: (IP literal, port)."""

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"

# Methods other SIP RFCs define: answered 405 (we know them, we don't do them);
# anything else is 501 (§8.2.1).
KNOWN_METHODS = frozenset(
    {"REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE",
     "UPDATE"}
)  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class DialogConfig:
    """How we appear on the wire, and the RFC 3261 timer values (§17.1.1.1).

    ``local_host``/``local_port`` go into our Via, Contact and the SDP's owner; use the
    address the peer can reach (not 0.0.0.0). ``initial_cseq``: our first request (BYE)
    uses ``initial_cseq + 1``.
    """

    local_host: str
    local_port: int
    t1: float = 0.5
    t2: float = 4.0
    user_agent: str = "voxlane"
    contact_user: str = "voxlane"
    allow: str = ALLOW
    initial_cseq: int = 0

    @property
    def transaction_timeout(self) -> float:
        """64·T1: how long a transaction retransmits before giving up (Timers B, F, H)."""
        return 64 * self.t1

    @property
    def linger_s(self) -> float:
        """How long a terminated dialog is kept to absorb retransmissions."""
        return 64 * self.t1


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to send and where to send it."""

    message: SipRequest | SipResponse
    addr: Address

    def to_bytes(self) -> bytes:
        return self.message.to_bytes()


class RetransmitTimer:
    """Retransmission at T1, 2·T1, 4·T1 ... capped at T2, giving up after 64·T1.

    The same schedule serves a 2xx awaiting ACK (§13.3.1.4), a non-2xx final awaiting
    ACK (Timer G/H) and a non-INVITE client request (Timer E/F).
    """

    __slots__ = ("_give_up_at", "_interval", "_next_at", "_t2")

    def __init__(self, next_at: float, interval: float, give_up_at: float, t2: float) -> None:
        self._next_at = next_at
        self._interval = interval
        self._give_up_at = give_up_at
        self._t2 = t2

    @classmethod
    def start(cls, now: float, t1: float, t2: float) -> RetransmitTimer:
        return cls(now + t1, t1, now + 64 * t1, t2)

    def next_deadline(self) -> float:
        return min(self._next_at, self._give_up_at)

    def due(self, now: float) -> bool:
        return now >= self._next_at

    def expired(self, now: float) -> bool:
        return now >= self._give_up_at

    def advance(self, now: float) -> None:
        """After a retransmission: double the interval (≤ T2) and schedule from ``now``."""
        self._interval = min(self._interval * 2, self._t2)
        self._next_at = now + self._interval

    def provisional(self) -> None:
        """A provisional response arrived: retransmit at T2 from now on (§17.1.2.2)."""
        self._interval = self._t2


def method_not_allowed_or_implemented(request: SipRequest, allow: str) -> SipResponse:
    """405 with Allow for a method SIP defines but we don't do; 501 for any other."""
    if request.method in KNOWN_METHODS:
        return build_response(request, 405, headers=[("Allow", allow)])
    return build_response(request, 501)
