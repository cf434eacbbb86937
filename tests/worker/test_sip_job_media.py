"""A worker job's RTP latches like ``voxlane sip``'s (issue #10 item 6): onto the INVITE's
source IP behind a NAT, never outside the allowlist."""

from __future__ import annotations

import asyncio
import socket

from voxlane.aio.clock import DEFAULT_CLOCK
from voxlane.transports.sip import RtpSender
from voxlane.worker.sip_job import open_sip_job

HOST = "127.0.0.1"
PRIVATE = "127.0.0.2"  # what the caller's SDP names: its address inside the NAT


def offer(port: int) -> str:
    return (
        f"v=0\r\no=u 1 1 IN IP4 {PRIVATE}\r\ns=-\r\nc=IN IP4 {PRIVATE}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


def spec(allowed: list[str] | None) -> dict[str, object]:
    return {
        "kind": "sip",
        "call_id": "latch-1",
        "host": HOST,
        "signaling_host": HOST,  # the INVITE came from the NAT's public address
        "allowed_sources": allowed,
        "sdp_offer": offer(40000),
        "providers": "fake",
    }


async def destination_after_rtp_from_the_nat(allowed: list[str] | None) -> tuple[object, object]:
    job = await open_sip_job(spec(allowed), DEFAULT_CLOCK, "s-latch")
    nat = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    nat.bind((HOST, 0))
    try:
        sender = RtpSender(ssrc=7, payload_type=0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while loop.time() < deadline and job.media.destination != nat.getsockname():
            nat.sendto(sender.next_packet(b"\xff" * 160).to_bytes(), (HOST, job.media.local_port))
            await asyncio.sleep(0.02)
        return job.media.destination, nat.getsockname()
    finally:
        nat.close()
        await job.aclose(asyncio.get_running_loop().time() + 2.0)


async def test_job_rtp_latches_onto_the_invites_source_behind_a_nat() -> None:
    destination, nat = await destination_after_rtp_from_the_nat(None)
    assert destination == nat


async def test_job_rtp_never_latches_outside_the_allowlist() -> None:
    destination, nat = await destination_after_rtp_from_the_nat([f"{PRIVATE}/32"])
    assert destination != nat
    assert destination == (PRIVATE, 40000)
