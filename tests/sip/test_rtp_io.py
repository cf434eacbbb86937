"""RtpStream over real loopback UDP: paced G.711 send (sequence, timestamps, marker bits),
reordering receive into 8 kHz frames, RTP timeout, and aclose releasing the socket."""

from __future__ import annotations

import asyncio
import itertools
import socket

import numpy as np
import pytest

from voxlane.media import AudioFrame
from voxlane.transports.sip import g711
from voxlane.transports.sip.addresses import Allowlist
from voxlane.transports.sip.rtp import RtpSender, parse_rtp
from voxlane.transports.sip.rtp_io import open_rtp_stream
from voxlane.transports.sip.sdp import AudioNegotiation

pytestmark = pytest.mark.real_time

HOST = "127.0.0.1"


def negotiation(port: int) -> AudioNegotiation:
    return AudioNegotiation(payload_type=0, encoding="PCMU", remote_host=HOST,
                            remote_port=port, media_index=0, offer_media=())


def drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(2048))
        except BlockingIOError:
            return out


async def test_send_is_paced_g711_with_talkspurts() -> None:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((HOST, 0))
    peer.setblocking(False)
    stream = await open_rtp_stream(HOST, rtp_timeout_s=30)
    loop = asyncio.get_running_loop()
    try:
        stream.start(negotiation(peer.getsockname()[1]))
        tone = AudioFrame.tone(0.5, 16000)
        t0 = loop.time()
        for i in range(0, len(tone.data), 640):  # 20 ms frames at 16 kHz
            await stream.output.capture_frame(AudioFrame(tone.data[i:i + 640], 16000))
        stream.output.flush()
        await asyncio.wait_for(stream.output.wait_for_playout(), 3)
        elapsed = loop.time() - t0
        await asyncio.sleep(0.3)  # silence between two replies
        for i in range(0, 6400, 640):  # a second, short segment
            await stream.output.capture_frame(AudioFrame(tone.data[i:i + 640], 16000))
        stream.output.flush()
        await asyncio.wait_for(stream.output.wait_for_playout(), 3)
        await asyncio.sleep(0.05)
        packets = [parse_rtp(d) for d in drain(peer)]
    finally:
        await stream.aclose()
        peer.close()
    assert 0.4 <= elapsed <= 0.7  # real-time pace, not a burst
    assert len(packets) >= 30
    seqs = [p.sequence for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
    markers = [i for i, p in enumerate(packets) if p.marker]
    assert markers[0] == 0 and len(markers) == 2  # one talkspurt per segment
    second = markers[1]
    step = (packets[second].timestamp - packets[second - 1].timestamp) % (1 << 32)
    assert step > 160 * 10  # the timestamp kept running through the 0.3 s of silence
    assert all(len(p.payload) == 160 and p.payload_type == 0 for p in packets)
    pcm = g711.decode(0, b"".join(p.payload for p in packets[5:20]))
    assert int(np.abs(pcm.astype(np.int32)).max()) > 1000
    assert stream.statistics().packets_out == len(packets)
    assert all(abs(j) < 0.015 for j in stream.send_jitter)


async def test_receive_reorders_decodes_and_times_out() -> None:
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind((HOST, 0))
    stream = await open_rtp_stream(HOST, rtp_timeout_s=0.5)
    timeouts: list[float] = []
    loop = asyncio.get_running_loop()
    stream.on_timeout = lambda: timeouts.append(loop.time())
    try:
        stream.start(negotiation(caller.getsockname()[1]))
        sender = RtpSender(ssrc=7, payload_type=0)
        level = [1000 * (i + 1) for i in range(6)]
        packets = [sender.next_packet(g711.encode(0, np.full(160, v, dtype=np.int16)))
                   for v in level]
        order = [0, 2, 1, 3, 5, 4]  # reordered within the jitter window
        for i in order:
            caller.sendto(packets[i].to_bytes(), (HOST, stream.local_port))
        caller.sendto(b"not rtp", (HOST, stream.local_port))
        frames: list[AudioFrame] = []
        async def collect() -> None:
            async for frame in stream.audio_in:
                frames.append(frame)
        reader = asyncio.ensure_future(collect())
        await asyncio.sleep(1.2)
        assert len(timeouts) == 1  # once, ~0.5 s after the last packet
        await stream.aclose()
        await asyncio.wait({reader}, timeout=1)
        assert reader.done()
    finally:
        await stream.aclose()
        caller.close()
    assert {f.sample_rate for f in frames} == {8000}
    peaks = [int(np.abs(f.to_numpy().astype(np.int32)).max()) for f in frames]
    assert peaks[:6] == sorted(peaks[:6]) and min(peaks[:6]) > 0  # in sequence order
    # Then no more RTP: the caller's timeline goes on as silence (~1 s of it, until closed).
    filled = sum(f.duration for f in frames[6:])
    assert set(peaks[6:]) == {0} and 0.7 <= filled <= 1.2, filled
    assert stream.silence_filled_s == pytest.approx(filled)
    stats = stream.statistics()
    assert stats.packets_in == 6 and stats.garbage == 1 and stats.lost == 0
    # The socket is released: the port can be bound again.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind((HOST, stream.local_port))


async def test_port_range_uses_even_ports_and_runs_out() -> None:
    base = 0
    for _ in range(20):  # find two free even ports in a row
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            base = int(probe.getsockname()[1]) & ~1
        if base + 3 < 65536:
            break
    first = await open_rtp_stream(HOST, port_range=(base, base + 3))
    try:
        assert first.local_port % 2 == 0 and base <= first.local_port <= base + 2
        try:
            second = await open_rtp_stream(HOST, port_range=(base, base + 3))
        except OSError:
            return  # the other even port was taken by someone else: also a clean refusal
        try:
            assert second.local_port % 2 == 0 and second.local_port != first.local_port
            with pytest.raises(OSError):
                await open_rtp_stream(HOST, port_range=(base, base + 3))
        finally:
            await second.aclose()
    finally:
        await first.aclose()


async def test_a_hostname_never_reaches_the_send_path() -> None:
    """The RTP destination is an IP literal or the stream does not start (issue #10
    item 5: a sendto with a hostname is a blocking DNS lookup on the loop, per packet)."""
    stream = await open_rtp_stream(HOST)
    try:
        named = AudioNegotiation(payload_type=0, encoding="PCMU", remote_host="example.invalid",
                                 remote_port=4000, media_index=0, offer_media=())
        with pytest.raises(ValueError, match="must be an IP address"):
            stream.start(named)
        assert stream.destination is None
        stream.start(negotiation(4000))
        assert stream.destination == (HOST, 4000)
    finally:
        await stream.aclose()


async def test_nothing_is_sent_until_latched_when_the_sdp_address_is_not_allowed() -> None:
    """Review of issue #10 item 6: with an allowlist that the SDP's (private) address is
    outside of, the agent's audio is not sent anywhere — counted as ``frames_unsent`` —
    until the caller's RTP arrives from an allowed candidate (the INVITE's source IP, any
    port); then it flows there, and never to the SDP address."""
    private = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    private.bind(("127.0.0.2", 0))  # what the SDP names (127.0.0.x: all on lo on Linux)
    private.setblocking(False)
    nat = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    nat.bind((HOST, 0))  # where the caller's RTP really comes from: the INVITE's source IP
    nat.setblocking(False)
    stream = await open_rtp_stream(HOST, rtp_timeout_s=30)
    loop = asyncio.get_running_loop()

    async def play(seconds: float) -> None:
        tone = AudioFrame.tone(seconds, 8000)
        for i in range(0, len(tone.data), 320):
            await stream.output.capture_frame(AudioFrame(tone.data[i:i + 320], 8000))
        stream.output.flush()
        await asyncio.wait_for(stream.output.wait_for_playout(), 3)
        await asyncio.sleep(0.05)

    try:
        sdp = AudioNegotiation(payload_type=0, encoding="PCMU", remote_host="127.0.0.2",
                               remote_port=private.getsockname()[1], media_index=0,
                               offer_media=())
        stream.start(sdp, signaling_host=HOST, allowlist=Allowlist([f"{HOST}/32"]))
        assert stream.destination is None
        await play(0.2)
        stats = stream.statistics()
        assert stats.packets_out == 0 and stats.frames_unsent == 10
        assert drain(private) == []
        # RTP from the disallowed SDP address does not latch (nor is it heard) ...
        sender = RtpSender(ssrc=5, payload_type=0)
        private.sendto(sender.next_packet(b"\xff" * 160).to_bytes(), (HOST, stream.local_port))
        await asyncio.sleep(0.05)
        assert stream.destination is None and stream.statistics().packets_in == 0
        # ... RTP from the INVITE's source IP, on any port, does.
        deadline = loop.time() + 2.0
        while stream.destination is None and loop.time() < deadline:
            nat.sendto(sender.next_packet(b"\xff" * 160).to_bytes(), (HOST, stream.local_port))
            await asyncio.sleep(0.02)
        assert stream.destination == nat.getsockname()
        await play(0.2)
        at_nat = [parse_rtp(d) for d in drain(nat)]
        assert len(at_nat) == 10 and stream.statistics().packets_out == 10
        assert stream.statistics().frames_unsent == 10
        assert drain(private) == []
    finally:
        await stream.aclose()
        private.close()
        nat.close()
