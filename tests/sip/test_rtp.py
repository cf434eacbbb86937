"""RTP packet codec, jitter buffer and sender tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxlane.transports.sip.errors import RtpParseError
from voxlane.transports.sip.rtp import (
    JitterBuffer,
    RtpActivity,
    RtpPacket,
    RtpSender,
    parse_rtp,
)


def pkt(seq: int, ssrc: int = 0x1234) -> RtpPacket:
    return RtpPacket(
        payload_type=0,
        sequence=seq % 65536,
        timestamp=(seq * 160) % 2**32,
        ssrc=ssrc,
        payload=bytes([seq % 256]) * 160,
    )


def test_minimal_packet_roundtrip() -> None:
    raw = bytes.fromhex("80000001000000a0deadbeef") + b"\xff" * 160
    p = parse_rtp(raw)
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.marker) == (
        0,
        1,
        160,
        0xDEADBEEF,
        False,
    )
    assert p.payload == b"\xff" * 160 and p.to_bytes() == raw


def test_full_featured_packet_roundtrip() -> None:
    p = RtpPacket(
        payload_type=8,
        sequence=65535,
        timestamp=2**32 - 1,
        ssrc=7,
        payload=b"abc",
        marker=True,
        csrcs=(1, 2),
        extension=(0xBEDE, b"\x01\x02\x03\x04"),
    )
    raw = p.to_bytes(padding=4)
    assert raw[0] & 0x20 and raw[-1] == 4
    assert parse_rtp(raw) == p


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x80\x00",
        bytes(12),
        b"\x40" + bytes(11),  # too short, version 0, version 1
        b"\x8f" + bytes(11),  # 15 CSRCs announced, none present
        b"\x90" + bytes(11) + b"\x00\x00",  # extension header truncated
        b"\x90" + bytes(11) + b"\x00\x00\x00\x05",  # extension data truncated
        b"\xa0" + bytes(11) + b"\x00",  # padding length 0
        b"\xa0" + bytes(11) + b"\x09",
    ],  # padding longer than payload
)
def test_garbage_raises_rtp_parse_error(raw: bytes) -> None:
    with pytest.raises(RtpParseError):
        parse_rtp(raw)


@given(st.binary(max_size=200))
def test_parse_rtp_only_raises_rtp_parse_error(data: bytes) -> None:
    try:
        p = parse_rtp(data)
    except RtpParseError:
        return
    assert 0 <= p.sequence < 65536 and len(p.payload) <= len(data)


def drain(jb: JitterBuffer, now: float) -> list[int]:
    out = []
    while (p := jb.pop(now)) is not None:
        out.append(p.sequence)
    return out


def test_in_order() -> None:
    jb = JitterBuffer()
    for s in range(5):
        assert jb.push(pkt(s), 0.0)
    assert drain(jb, 0.0) == [0, 1, 2, 3, 4]
    assert jb.statistics().lost == 0


def test_reorder_is_fixed() -> None:
    jb = JitterBuffer(depth=3)
    for s in [0, 2, 1, 4, 3]:
        jb.push(pkt(s), 0.0)
    assert drain(jb, 0.0) == [0, 1, 2, 3, 4]
    assert jb.statistics().reordered == 2


def test_waits_for_missing_then_counts_it_lost() -> None:
    jb = JitterBuffer(depth=3, max_delay_s=0.1)
    jb.push(pkt(0), 0.0)
    jb.push(pkt(2), 0.0)
    assert drain(jb, 0.0) == [0]  # 1 missing, only one later packet queued: wait
    assert drain(jb, 0.05) == []
    assert drain(jb, 0.1) == [2]  # waited max_delay_s: give up on 1
    assert jb.statistics().lost == 1
    jb.push(pkt(1), 0.12)  # arrives after its turn
    assert jb.statistics().late == 1 and drain(jb, 0.12) == []


def test_depth_releases_hole_without_waiting() -> None:
    jb = JitterBuffer(depth=3, max_delay_s=10)
    for s in [0, 2, 3, 4]:
        jb.push(pkt(s), 0.0)
    assert drain(jb, 0.0) == [0, 2, 3, 4]
    assert jb.statistics().lost == 1


def test_duplicates_dropped() -> None:
    jb = JitterBuffer()
    assert jb.push(pkt(0), 0.0)
    assert not jb.push(pkt(0), 0.0)
    assert drain(jb, 0.0) == [0]
    assert not jb.push(pkt(0), 0.0)  # a duplicate of a played packet is late
    stats = jb.statistics()
    assert (stats.duplicates, stats.late, stats.played) == (1, 1, 1)


def test_sequence_wraps() -> None:
    jb = JitterBuffer()
    seqs = [65533, 65534, 0, 65535, 1, 2]
    for s in seqs:
        jb.push(pkt(s), 0.0)
    assert drain(jb, 0.0) == [65533, 65534, 65535, 0, 1, 2]
    assert jb.statistics().lost == 0


def test_new_ssrc_or_big_jump_restarts() -> None:
    jb = JitterBuffer()
    jb.push(pkt(10), 0.0)
    drain(jb, 0.0)
    jb.push(pkt(5, ssrc=99), 0.0)
    assert drain(jb, 0.0) == [5]
    jb.push(pkt(30000, ssrc=99), 0.0)
    assert drain(jb, 0.0) == [30000]
    assert jb.statistics().resets == 2 and jb.statistics().lost == 0


def test_bounded_when_nobody_pops() -> None:
    jb = JitterBuffer(max_size=10)
    for s in range(100):
        jb.push(pkt(s), 0.0)
    assert len(jb) == 10
    assert jb.statistics().overflowed == 90
    assert drain(jb, 0.0) == list(range(90, 100))


def test_sender_sequencing_and_marker() -> None:
    tx = RtpSender(ssrc=42, payload_type=0, initial_sequence=65535, initial_timestamp=2**32 - 80)
    a = tx.next_packet(b"\xff" * 160)
    b = tx.next_packet(b"\xff" * 160)
    assert (a.sequence, a.timestamp, a.marker) == (65535, 2**32 - 80, True)
    assert (b.sequence, b.timestamp, b.marker) == (0, 80, False)
    tx.skip(160 * 5)  # 100 ms of silence not sent
    tx.start_talkspurt()
    c = tx.next_packet(b"\xff" * 160)
    assert (c.sequence, c.timestamp, c.marker) == (1, 80 + 160 + 800, True)
    assert parse_rtp(c.to_bytes()) == c
    assert tx.packets_sent == 3


def test_rtp_activity_watchdog() -> None:
    act = RtpActivity(now=100.0)
    assert not act.is_timed_out(104.9, 5.0) and act.is_timed_out(105.0, 5.0)
    act.on_packet(103.0)
    assert act.deadline(5.0) == 108.0 and not act.is_timed_out(107.0, 5.0)
    assert act.last_packet_at == 103.0 and act.packets == 1


def test_telephone_event() -> None:
    from voxlane.transports.sip.rtp import parse_telephone_event

    ev = parse_telephone_event(bytes([11, 0x80 | 10, 0x03, 0x20]))
    assert (ev.digit, ev.end, ev.volume, ev.duration) == ("#", True, 10, 800)
    assert parse_telephone_event(bytes([5, 10, 0, 160])).digit == "5"
    with pytest.raises(RtpParseError):
        parse_telephone_event(b"\x01")


@given(
    base=st.integers(0, 65535),
    order=st.lists(st.integers(0, 80), min_size=1, max_size=120),
)
def test_jitter_buffer_invariants(base: int, order: list[int]) -> None:
    """Any arrival order, with duplicates and gaps: output strictly in order, each
    packet at most once, and every sequence number in the played span is either
    played or counted lost."""
    jb = JitterBuffer(depth=3, max_delay_s=0.06, max_size=8)
    out: list[int] = []
    now = 0.0
    for offset in order:
        jb.push(pkt(base + offset), now)
        now += 0.02
        while (p := jb.pop(now)) is not None:
            out.append(p.sequence)
    while (p := jb.pop(now + 10)) is not None:
        out.append(p.sequence)
    unwrapped = [(s - base) % 65536 for s in out]
    assert unwrapped == sorted(set(unwrapped))
    stats = jb.statistics()
    assert stats.played == len(out)
    assert stats.played + stats.lost + stats.overflowed == unwrapped[-1] - unwrapped[0] + 1
    assert stats.buffered == 0
