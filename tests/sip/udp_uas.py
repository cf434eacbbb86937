"""A blocking, single-threaded UDP user agent server around SipEndpointCore.

Test support only, for smoke runs against a real sipp on 127.0.0.1: it answers every
call (SDP negotiated with the sdp module), receives RTP through a JitterBuffer and
decodes it with g711, sends a tone back with RtpSender, and hangs up after
``--hangup-after`` seconds or when RTP stops for ``--rtp-timeout`` seconds. The real
asyncio transport lives elsewhere; this is here to prove the pure layer against a peer.

    python -m tests.sip.udp_uas --port 5070 --duration 15 --rtp-timeout 2

Prints one JSON report on exit.
"""

from __future__ import annotations

import argparse
import json
import secrets
import select
import socket
import time
from dataclasses import dataclass, field

import numpy as np

from voxlane.transports.sip import (
    CallConfirmed,
    CallOffered,
    CallTerminated,
    DialogConfig,
    EndpointConfig,
    JitterBuffer,
    NoCommonCodecError,
    RtpActivity,
    RtpParseError,
    RtpSender,
    SdpError,
    SipEndpointCore,
    build_answer,
    g711,
    negotiate,
    parse_rtp,
    parse_sdp,
)
from voxlane.transports.sip.sdp import AudioNegotiation

HOST = "127.0.0.1"


@dataclass
class Media:
    sock: socket.socket
    chosen: AudioNegotiation
    activity: RtpActivity
    jitter: JitterBuffer = field(default_factory=JitterBuffer)
    sender: RtpSender | None = None
    confirmed_at: float | None = None
    samples_in: int = 0
    peak: int = 0
    next_send: float = 0.0


def run(
    port: int,
    duration: float,
    hangup_after: float | None,
    rtp_timeout: float | None,
    max_calls: int,
    answer_delay: float = 0.0,
    exit_after_calls: int | None = None,
) -> dict[str, object]:
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind((HOST, port))
    core = SipEndpointCore(
        EndpointConfig(dialog=DialogConfig(local_host=HOST, local_port=port), max_calls=max_calls)
    )
    media: dict[str, Media] = {}
    pending: dict[str, tuple[float, bytes]] = {}  # call_id → (answer at, SDP answer)
    report: dict[str, object] = {"calls": {}}
    calls: dict[str, dict[str, object]] = {}
    tone = (np.sin(2 * np.pi * 440 * np.arange(160) / 8000) * 8000).astype(np.int16)
    start = time.monotonic()
    stop_at = start + duration
    try:
        while (now := time.monotonic()) < stop_at:
            socks = [sip] + [m.sock for m in media.values()]
            readable, _, _ = select.select(socks, [], [], 0.01)
            now = time.monotonic()
            for sock in readable:
                data, addr = sock.recvfrom(65535)
                if sock is sip:
                    core.receive_datagram(data, (addr[0], addr[1]), now)
                    continue
                m = next(x for x in media.values() if x.sock is sock)
                try:
                    m.jitter.push(parse_rtp(data), now)
                    m.activity.on_packet(now)
                except RtpParseError:
                    pass
            deadline = core.next_deadline()
            if deadline is not None and now >= deadline:
                core.handle_timeout(now)
            for event in core.events_received():
                if isinstance(event, CallOffered):
                    try:
                        chosen = negotiate(parse_sdp(event.invite.body))
                    except NoCommonCodecError:
                        core.reject(event.call_id, 488, now)
                        continue
                    except SdpError:
                        core.reject(event.call_id, 400, now)
                        continue
                    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    rtp.bind((HOST, 0))
                    body = build_answer(
                        chosen,
                        local_ip=HOST,
                        local_port=rtp.getsockname()[1],
                        session_id=secrets.randbelow(2**31),
                    )
                    media[event.call_id] = Media(rtp, chosen, RtpActivity(now))
                    calls[event.call_id] = {"codec": chosen.encoding}
                    pending[event.call_id] = (now + answer_delay, body)
                elif isinstance(event, CallConfirmed) and event.call_id in media:
                    m = media[event.call_id]
                    m.confirmed_at = m.next_send = now
                    m.activity = RtpActivity(now)
                    m.sender = RtpSender(
                        ssrc=secrets.randbits(32),
                        payload_type=m.chosen.payload_type,
                        initial_sequence=secrets.randbelow(65536),
                    )
                elif isinstance(event, CallTerminated):
                    pending.pop(event.call_id, None)
                    m_done = media.pop(event.call_id, None)
                    info = calls.setdefault(event.call_id, {})
                    info["reason"] = event.reason
                    ended = sum(1 for c in calls.values() if "reason" in c)
                    if exit_after_calls is not None and ended >= exit_after_calls:
                        stop_at = min(stop_at, now + 0.5)  # grace for retransmissions
                    if m_done is not None:
                        m_done.sock.close()
                        stats = m_done.jitter.statistics()
                        info.update(
                            rtp_packets=stats.received,
                            lost=stats.lost,
                            late=stats.late,
                            audio_in_s=m_done.samples_in / 8000,
                            peak=m_done.peak,
                        )
            for call_id, (when, body) in list(pending.items()):
                if now >= when:
                    del pending[call_id]
                    core.answer(call_id, body, now)
            for call_id, m in list(media.items()):
                while (packet := m.jitter.pop(now)) is not None:
                    if packet.payload_type == m.chosen.payload_type:
                        pcm = g711.decode(packet.payload_type, packet.payload)
                        m.samples_in += len(pcm)
                        m.peak = max(m.peak, int(np.abs(pcm.astype(np.int32)).max(initial=0)))
                if m.sender is not None and now >= m.next_send:
                    pkt = m.sender.next_packet(g711.encode(m.chosen.payload_type, tone))
                    m.sock.sendto(pkt.to_bytes(), (m.chosen.remote_host, m.chosen.remote_port))
                    m.next_send += 0.02
                if m.confirmed_at is None:
                    continue
                if hangup_after is not None and now - m.confirmed_at >= hangup_after:
                    core.hangup(call_id, now, reason="agent_hangup")
                    m.confirmed_at = None
                elif rtp_timeout is not None and m.activity.is_timed_out(now, rtp_timeout):
                    core.hangup(call_id, now, reason="rtp_timeout")
                    m.confirmed_at = None
            for data, addr in core.datagrams_to_send():
                sip.sendto(data, addr)
    finally:
        sip.close()
        for m in media.values():
            m.sock.close()
    report["calls"] = calls
    report["statistics"] = core.statistics().__repr__()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5070)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--hangup-after", type=float, default=None)
    parser.add_argument("--rtp-timeout", type=float, default=None)
    parser.add_argument("--max-calls", type=int, default=4)
    parser.add_argument("--answer-delay", type=float, default=0.0)
    parser.add_argument("--exit-after-calls", type=int, default=None)
    args = parser.parse_args(argv)
    report = run(
        args.port,
        args.duration,
        args.hangup_after,
        args.rtp_timeout,
        args.max_calls,
        args.answer_delay,
        args.exit_after_calls,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
