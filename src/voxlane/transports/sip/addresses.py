"""Addresses the SIP layer sends to, and who may make it send there. Pure.

Two rules hold every datagram voxlane sends over SIP or RTP:

* **IP literals only.** A destination is an IPv4 or IPv6 address, never a hostname: a
  ``sendto`` with a hostname runs a blocking DNS lookup on the event loop (for RTP, 50
  times a second per call). :func:`ip_literal` decides without resolving anything; an SDP
  ``c=`` address that is not one is refused (:func:`media_address_problem`, 488). An IPv6
  address with a zone (``fe80::1%eth0``, ``fe80::1%evil.example.com``) is not one either:
  CPython's ``sendto`` hands any host with a ``%`` to ``getaddrinfo``, on every packet.
* **The allowlist decides where media may be sent, not whether a call is taken.** With
  ``allowed_sources`` set (:class:`Allowlist`), the SIP source must be inside it (the
  endpoint answers 403 otherwise), but an SDP media address outside it does not refuse
  the call: :class:`RtpLatch` then sends nothing until the stream latches onto an allowed
  address, and it only ever latches onto one.

Latching (symmetric RTP, RFC 4961; "comedia"): callers behind a NAT put their private
address in the SDP, and their RTP arrives from the NAT's public address. The candidates
are the SDP's media IP and the call's SIP source IP, each only if allowed. Until the
caller's first RTP packet we send to the SDP address if it is allowed, and nowhere if it
is not; the first packet of a negotiated payload type whose source IP is a candidate (any
port) fixes the peer: from then on we send to that packet's source address and accept RTP
only from it. Packets from anywhere else never move the stream (a guessed port is not
enough to hijack or redirect a call). Without an allowlist every IP is allowed, so we send
to the SDP address until latched.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .common import Address

__all__ = ["ALLOW_ALL", "Allowlist", "RtpLatch", "ip_literal", "media_address_problem"]

_IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _parse_ip(text: str) -> _IpAddress | None:
    """``text`` as an address when it is an IP literal without a zone, else None."""
    if not text or len(text) > 64 or not text.isascii() or "%" in text:
        # A zone ("%eth0", "%evil.example.com") would make every sendto call getaddrinfo.
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return None  # belt and braces: the "%" test above already refuses every zone
    return address


def _matchable(text: str | None) -> _IpAddress | None:
    """The address to compare and match against networks: an IPv4-mapped IPv6 address
    (a dual-stack socket's view of an IPv4 peer) is its IPv4 address."""
    address = _parse_ip(text) if isinstance(text, str) else None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_literal(text: str | None) -> str | None:
    """``text`` in canonical form when it is an IPv4 or IPv6 address literal (as a socket
    takes it: no ``[...]``, no ``%zone``), else None. Never resolves a name; never raises."""
    address = _parse_ip(text) if isinstance(text, str) else None
    return None if address is None else str(address)


def media_address_problem(text: str) -> str | None:
    """Why we will not send RTP to ``text`` (an SDP connection address), or None when it
    is usable: an IP literal without a zone that is not unspecified, multicast or
    broadcast. (Whether it is allowed is :class:`RtpLatch`'s business, not a refusal.)"""
    if "%" in text and _parse_ip(text.partition("%")[0]) is not None:
        return "has an IPv6 zone (not accepted)"
    address = _parse_ip(text)
    if address is None:
        return "is not an IP address (hostnames are not resolved)"
    if address.is_unspecified:
        return "is unspecified"
    if address.is_multicast or address == _BROADCAST:
        return "is a multicast or broadcast address"
    return None


class Allowlist:
    """IP networks a peer's address must be in; ``None`` (the default) admits every IP.

    ``specs``: addresses or CIDR networks (``"10.0.0.0/8"``, ``"192.0.2.7"``); raises
    ``ValueError`` naming a malformed one (a zone, ``fe80::%eth0/64``, included). A name
    that is not an IP literal, or an address with a zone, is never allowed (nothing is
    resolved).
    """

    __slots__ = ("_networks",)

    def __init__(self, specs: Iterable[str] | None = None) -> None:
        self._networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None
        if specs is None:
            self._networks = None
            return
        networks = []
        for spec in specs:
            try:
                if "%" in spec:
                    raise ValueError("zone")
                networks.append(ipaddress.ip_network(spec.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or CIDR network: {spec!r}") from None
        self._networks = tuple(networks)

    @property
    def restricted(self) -> bool:
        """True when an allowlist is set (not everyone is admitted)."""
        return self._networks is not None

    def allows(self, host: str) -> bool:
        address = _matchable(host)
        if address is None:
            return False
        return self._networks is None or any(address in net for net in self._networks)


ALLOW_ALL = Allowlist()


class RtpLatch:
    """Where one call's RTP goes, and whose RTP it accepts (module docstring: latching).

    ``sdp_address`` is the negotiated (connection address, port); raises ``ValueError``
    unless its host is an IP literal and its port 1..65535. ``signaling_host``: the IP the
    call's INVITE came from (the NAT's public address), None when unknown. ``allowlist``:
    where RTP may go; the SDP address counts only if it is inside it.
    :attr:`destination` is an IP-literal address, or None while there is nowhere to send.
    """

    __slots__ = ("_candidates", "_destination", "_latched")

    def __init__(
        self,
        sdp_address: Address,
        *,
        signaling_host: str | None = None,
        allowlist: Allowlist = ALLOW_ALL,
    ) -> None:
        host, port = ip_literal(sdp_address[0]), sdp_address[1]
        if host is None:
            raise ValueError(f"RTP destination must be an IP address, not {sdp_address[0]!r}")
        if not 1 <= port <= 65535:
            raise ValueError(f"RTP destination port out of range: {port}")
        # An SDP address outside the allowlist is never sent to: until the caller's RTP
        # latches the stream onto an allowed source, nothing is sent at all.
        self._destination: Address | None = (host, port) if allowlist.allows(host) else None
        self._latched: Address | None = None
        candidates = (_matchable(h) for h in (host, signaling_host) if h and allowlist.allows(h))
        self._candidates = frozenset(a for a in candidates if a is not None)

    @property
    def destination(self) -> Address | None:
        """Where to send: the latched source once latched; before that the SDP address if
        it is allowed, else None (send nothing)."""
        return self._destination

    @property
    def latched(self) -> Address | None:
        return self._latched

    def accept(self, source: Address, *, may_latch: bool = True) -> bool:
        """Whether a packet from ``source`` belongs to the call. Before the stream is
        latched, a packet with ``may_latch`` (a negotiated payload type) from a candidate
        IP latches it onto ``source``; afterwards only ``source == latched`` is accepted."""
        if self._latched is not None:
            return source == self._latched
        if not may_latch:
            return False
        address = _matchable(source[0])
        if address is None or address not in self._candidates or not 1 <= source[1] <= 65535:
            return False
        # Kept as the socket reported it: that is the form the same socket sends to.
        self._latched = self._destination = (source[0], source[1])
        return True
