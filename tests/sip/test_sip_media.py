"""Where the SIP server sends, over real UDP on 127.0.0.1 (issue #10 items 5 and 6).

Every datagram transport the server opens is wrapped so that each ``sendto`` destination
is recorded (and one that is not an IP literal is dropped instead of being resolved): the
server's SIP and RTP sockets alike. A raw-socket phone then sends what sipp cannot: an SDP
with a hostname, a Via with a forged ``received``, RTP from a port its SDP does not name
(a caller behind a NAT).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from voxlane.aio.ledger import LEDGER
from voxlane.runners.sip_server import SipServer, SipServerConfig, serve_sip
from voxlane.transports.sip import RtpSender
from voxlane.transports.sip.addresses import ip_literal

from .messages import SIPP_SDP, crlf
from .phone import HOST, Phone
from .recording import drain_rtp, record_sendto, udp_socket
from .test_sip_server import Greeter, providers

pytestmark = pytest.mark.real_time


def sdp(host: str, port: int) -> bytes:
    return crlf(SIPP_SDP.replace("127.0.0.1", host).replace("6000", str(port)))


def read_reports(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


async def wait_idle(server: SipServer, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while server.active_calls and loop.time() < deadline:
        await asyncio.sleep(0.02)


async def test_hostname_in_sdp_is_refused_and_nothing_is_ever_sent_to_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent_to = record_sendto(monkeypatch)
    server = await serve_sip(
        Greeter, providers, SipServerConfig(host=HOST, port=0, reports_dir=tmp_path)
    )
    phone = Phone(server.port)
    loop = asyncio.get_running_loop()
    try:
        phone.send(phone.invite("named", sdp=sdp("example.invalid", 4000)))
        (refused,) = [r for r in await phone.responses("named", 488) if r.status == 488]
        assert "not an IP address" in (refused.headers.get("warning") or "")
        # A Via whose received names a host: the 200 still comes back here, at once.
        t0 = loop.time()
        phone.send(phone.options("forged", ";received=example.invalid"))
        assert 200 in await phone.statuses("forged", 200)
        assert loop.time() - t0 < 1.0
        phone.send(phone.options("forged-rport", ";rport=9;received=example.invalid"))
        assert 200 in await phone.statuses("forged-rport", 200)
    finally:
        phone.close()
        await server.aclose()
    assert sent_to and all(a is not None and ip_literal(a[0]) for a in sent_to), sent_to
    assert server.statistics().calls_offered == 0  # the refusal came before any call
    assert server.statistics().listener_errors == 0
    assert read_reports(tmp_path) == []
    assert LEDGER.count_open() == 0


async def test_rtp_latches_onto_the_callers_nat_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDP names one port (the phone's "private" one); the phone's RTP comes from
    another (its NAT): once it arrives, our RTP follows it, to an IP literal only."""
    sent_to = record_sendto(monkeypatch)
    server = await serve_sip(
        Greeter,
        providers,
        SipServerConfig(host=HOST, port=0, reports_dir=tmp_path, rtp_timeout_s=5.0),
    )
    phone = Phone(server.port)
    private, nat = udp_socket(), udp_socket()
    nat_addr, private_port = nat.getsockname(), private.getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        phone.send(phone.invite("natted", sdp=sdp(HOST, private_port)))
        (ok,) = [r for r in await phone.responses("natted", 200) if r.status == 200]
        media_port = int(ok.body.split(b"m=audio ")[1].split(b" ")[0])
        phone.send(phone.in_dialog("ACK", "natted", 1, ok.to_addr.tag))
        sender = RtpSender(ssrc=99, payload_type=0)
        at_nat = 0
        deadline = loop.time() + 3.0
        while loop.time() < deadline and at_nat < 5:  # silence from the NAT's port
            nat.sendto(sender.next_packet(b"\xff" * 160).to_bytes(), (HOST, media_port))
            await asyncio.sleep(0.02)
            at_nat += drain_rtp(nat)
        (stream,) = server.rtp_streams()
        assert stream.destination == nat_addr
        phone.send(phone.in_dialog("BYE", "natted", 2, ok.to_addr.tag))
        assert 200 in await phone.statuses("natted", 200)
        await wait_idle(server)
    finally:
        for sock in (private, nat):
            sock.close()
        phone.close()
        await server.aclose()
    assert at_nat >= 5  # the greeting reached the NAT address
    rtp = [a for a in sent_to if a is not None and a[1] in (nat_addr[1], private_port)]
    assert rtp and all(a is not None and ip_literal(a[0]) for a in sent_to), sent_to
    (report,) = read_reports(tmp_path)
    assert report["sip"]["ended_by"] == "caller_bye"
    assert LEDGER.count_open() == 0
