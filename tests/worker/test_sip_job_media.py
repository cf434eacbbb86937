"""A worker job's RTP latches like ``voxlane sip``'s (issue #10 item 6): onto the INVITE's
source IP behind a NAT, only ever onto an allowed address, and with an SDP address
outside the allowlist it sends nothing until then."""

from __future__ import annotations

import asyncio
import socket

from sip.recording import drain_rtp, udp_socket
from voxlane.aio.clock import DEFAULT_CLOCK
from voxlane.media import AudioFrame
from voxlane.transports.sip import RtpSender
from voxlane.worker.sip_job import SipJob, open_sip_job

HOST = "127.0.0.1"
PRIVATE = "127.0.0.2"  # what the caller's SDP names: its address inside the NAT


def offer(port: int) -> str:
    return (
        f"v=0\r\no=u 1 1 IN IP4 {PRIVATE}\r\ns=-\r\nc=IN IP4 {PRIVATE}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


def spec(allowed: list[str] | None, port: int = 40000) -> dict[str, object]:
    return {
        "kind": "sip",
        "call_id": "latch-1",
        "host": HOST,
        "signaling_host": HOST,  # the INVITE came from the NAT's public address
        "allowed_sources": allowed,
        "sdp_offer": offer(port),
        "providers": "fake",
    }


async def latch_from(job: SipJob, sock: socket.socket) -> None:
    """Send RTP from ``sock`` to the job (bounded) until the job's stream latches onto it."""
    sender = RtpSender(ssrc=7, payload_type=0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    while loop.time() < deadline and job.media.destination != sock.getsockname():
        sock.sendto(sender.next_packet(b"\xff" * 160).to_bytes(), (HOST, job.media.local_port))
        await asyncio.sleep(0.02)


async def play(job: SipJob, seconds: float) -> None:
    """The agent's audio, as the session would play it (paced, 20 ms frames)."""
    tone = AudioFrame.tone(seconds, 8000)
    for i in range(0, len(tone.data), 320):
        await job.media.output.capture_frame(AudioFrame(tone.data[i : i + 320], 8000))
    job.media.output.flush()
    await asyncio.wait_for(job.media.output.wait_for_playout(), 3)
    await asyncio.sleep(0.05)


async def destination_after_rtp_from_the_nat(allowed: list[str] | None) -> tuple[object, object]:
    job = await open_sip_job(spec(allowed), DEFAULT_CLOCK, "s-latch")
    nat = udp_socket(HOST)
    try:
        await latch_from(job, nat)
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


async def test_job_sends_nothing_to_a_disallowed_sdp_address_and_latches_onto_the_source() -> None:
    """``--allow 127.0.0.1/32``: the INVITE's source is allowed, the SDP's private address
    is not. The call is taken (the job runs), no RTP ever goes to the SDP address, and once
    the caller's RTP arrives from the source IP ours flows there."""
    private, nat = udp_socket(PRIVATE), udp_socket(HOST)
    job = await open_sip_job(
        spec([f"{HOST}/32"], port=private.getsockname()[1]), DEFAULT_CLOCK, "s-latch"
    )
    try:
        assert job.media.destination is None
        await play(job, 0.2)
        assert drain_rtp(private) == 0
        before = job.report_extra()["sip"]["rtp"]
        assert before["packets_out"] == 0 and before["frames_unsent"] == 10
        await latch_from(job, nat)
        assert job.media.destination == nat.getsockname()
        await play(job, 0.2)
        assert drain_rtp(nat) == 10 and drain_rtp(private) == 0
        after = job.report_extra()["sip"]["rtp"]
        assert after["packets_out"] == 10 and after["frames_unsent"] == 10
    finally:
        private.close()
        nat.close()
        await job.aclose(asyncio.get_running_loop().time() + 2.0)
