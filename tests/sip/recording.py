"""Record where datagram sockets send: every ``sendto`` destination of every datagram
endpoint the running loop creates (SIP and RTP sockets alike), for tests that must prove
where the server sent (or never sent); and the caller's side of such tests: a bound
non-blocking UDP socket, and a count of the RTP packets it received."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest

from voxlane.transports.sip import parse_rtp
from voxlane.transports.sip.addresses import ip_literal

Destination = tuple[str, int] | None


class RecordingTransport:
    """A datagram transport that records every ``sendto`` destination and never lets a
    non-IP destination reach the socket (where it would block on a DNS lookup)."""

    def __init__(self, transport: asyncio.DatagramTransport, log: list[Destination]) -> None:
        self._transport = transport
        self._log = log

    def sendto(self, data: bytes, addr: Destination = None) -> None:
        self._log.append(addr)
        if addr is None or ip_literal(str(addr[0])) is not None:
            self._transport.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def record_sendto(monkeypatch: pytest.MonkeyPatch) -> list[Destination]:
    """Wrap every datagram endpoint created on the running loop from now on."""
    loop = asyncio.get_running_loop()
    create = loop.create_datagram_endpoint
    log: list[Destination] = []

    async def recording(factory: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await create(factory, *args, **kwargs)
        return RecordingTransport(transport, log), protocol

    monkeypatch.setattr(loop, "create_datagram_endpoint", recording)
    return log


def udp_socket(host: str = "127.0.0.1") -> socket.socket:
    """A non-blocking UDP socket bound to ``host`` on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def drain_rtp(sock: socket.socket) -> int:
    """Read every RTP packet waiting on ``sock``; how many there were."""
    count = 0
    while True:
        try:
            parse_rtp(sock.recv(2048))
        except BlockingIOError:
            return count
        count += 1
