"""RTP (RFC 3550) packets, a receive jitter buffer, and send-side sequencing. Pure.

* :func:`parse_rtp` / :meth:`RtpPacket.to_bytes`: version 2, padding, header extension
  and CSRC list. :func:`parse_rtp` raises :class:`RtpParseError` (only) on garbage.
* :class:`JitterBuffer`: ``push(packet, now)`` then ``pop(now)`` returns packets in
  sequence order. A missing packet is waited for until ``depth`` later packets are queued
  or the oldest queued packet has waited ``max_delay_s``; then it is counted lost and
  skipped. Late (already played or skipped) and duplicate packets are dropped and
  counted. Sequence numbers are unwrapped across 65536. Bounded: at most ``max_size``
  packets are held; past that the oldest hole is given up on.
* :class:`RtpSender`: sequence numbers, timestamps (+samples per frame) and the marker
  bit on the first packet of each talkspurt. SSRC and initial values are passed in (the
  caller draws them from ``secrets``), so the state stays deterministic under test.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import RtpParseError

__all__ = [
    "JitterBuffer",
    "JitterBufferStatistics",
    "RtpActivity",
    "RtpPacket",
    "RtpSender",
    "TelephoneEvent",
    "parse_rtp",
    "parse_telephone_event",
]

_HEADER = struct.Struct("!BBHII")
_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
# A jump this far from the expected sequence number is a restarted stream, not loss.
_MAX_SEQ_JUMP = 3000


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet. ``payload`` excludes padding; ``extension`` is (profile, data)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None

    def to_bytes(self, *, padding: int = 0) -> bytes:
        """Serialize; ``padding`` (0..255) adds that many padding bytes (P bit set).

        Raises ``ValueError`` on out-of-range fields (a caller bug).
        """
        if not 0 <= self.payload_type <= 127 or not 0 <= self.sequence < _SEQ_MOD:
            raise ValueError("payload type or sequence out of range")
        if not 0 <= self.timestamp < _TS_MOD or not 0 <= self.ssrc < _TS_MOD:
            raise ValueError("timestamp or SSRC out of range")
        if len(self.csrcs) > 15 or not 0 <= padding <= 255:
            raise ValueError("too many CSRCs or bad padding")
        first = 0x80 | (0x20 if padding else 0) | (0x10 if self.extension else 0) | len(self.csrcs)
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        parts.extend(struct.pack("!I", c) for c in self.csrcs)
        if self.extension is not None:
            profile, data = self.extension
            if len(data) % 4 or len(data) // 4 > 0xFFFF:
                raise ValueError("extension data must be a multiple of 4 bytes")
            parts.append(struct.pack("!HH", profile, len(data) // 4) + data)
        parts.append(self.payload)
        if padding:
            parts.append(bytes(padding - 1) + bytes([padding]))
        return b"".join(parts)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one datagram as RTP v2. Raises :class:`RtpParseError` on anything else."""
    if len(data) < _HEADER.size:
        raise RtpParseError(f"too short for RTP: {len(data)} bytes")
    first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise RtpParseError(f"RTP version {first >> 6}, expected 2")
    offset = _HEADER.size
    cc = first & 0x0F
    if len(data) < offset + 4 * cc:
        raise RtpParseError("truncated CSRC list")
    csrcs = struct.unpack_from(f"!{cc}I", data, offset)
    offset += 4 * cc
    extension: tuple[int, bytes] | None = None
    if first & 0x10:
        if len(data) < offset + 4:
            raise RtpParseError("truncated header extension")
        profile, words = struct.unpack_from("!HH", data, offset)
        offset += 4
        if len(data) < offset + 4 * words:
            raise RtpParseError("truncated header extension data")
        extension = (profile, bytes(data[offset : offset + 4 * words]))
        offset += 4 * words
    end = len(data)
    if first & 0x20:
        pad = data[-1]
        if pad == 0 or end - pad < offset:
            raise RtpParseError(f"bad padding length {pad}")
        end -= pad
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
        csrcs=tuple(csrcs),
        extension=extension,
    )


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 DTMF payload: ``event`` 0-9 digits, 10 ``*``, 11 ``#``, 12-15 A-D.

    One key press is several packets with the same RTP timestamp; act on the first one
    with ``end`` set (the end packet is usually sent three times).
    """

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return "0123456789*#ABCD"[self.event] if self.event < 16 else None


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    """Parse a telephone-event payload (4 bytes). Raises RtpParseError when shorter."""
    if len(payload) < 4:
        raise RtpParseError(f"telephone-event payload too short: {len(payload)} bytes")
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return TelephoneEvent(
        event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration
    )


@dataclass(frozen=True, slots=True)
class JitterBufferStatistics:
    """Counters since creation.

    ``lost``: sequence numbers skipped at playout; ``late``: arrived after their turn;
    ``overflowed``: dropped because ``max_size`` packets were already queued.
    """

    received: int
    played: int
    lost: int
    late: int
    duplicates: int
    reordered: int
    resets: int
    overflowed: int
    buffered: int


class JitterBuffer:
    """Reorders one RTP stream for playout. See the module docstring for the policy.

    Call ``push`` for every received packet and ``pop`` on the playout tick (every 20 ms)
    until it returns None. Push telephone-event (DTMF) and comfort-noise packets too and
    dispatch on ``payload_type`` after ``pop``: they share the audio's sequence space, so
    leaving them out would look like loss. A new SSRC, or a sequence jump of more than
    3000, restarts the buffer (the sender restarted its stream); ``resets`` counts these.
    """

    def __init__(self, *, depth: int = 3, max_delay_s: float = 0.08, max_size: int = 50) -> None:
        if depth < 1 or max_size < depth or max_delay_s < 0:
            raise ValueError("need depth >= 1, max_size >= depth, max_delay_s >= 0")
        self._depth = depth
        self._max_delay_s = max_delay_s
        self._max_size = max_size
        self._ssrc: int | None = None
        self._highest: int | None = None  # extended (unwrapped) sequence numbers
        self._next: int | None = None  # next extended sequence to play
        self._queue: dict[int, tuple[RtpPacket, float]] = {}
        self._received = self._played = self._lost = 0
        self._late = self._duplicates = self._reordered = self._resets = 0
        self._overflowed = 0

    def _extend(self, seq: int) -> int:
        assert self._highest is not None
        delta = (seq - self._highest) % _SEQ_MOD
        if delta >= _SEQ_MOD // 2:
            delta -= _SEQ_MOD
        return self._highest + delta

    def _restart(self, packet: RtpPacket) -> None:
        if self._ssrc is not None:
            self._resets += 1
        self._ssrc = packet.ssrc
        # Offset by one wrap so early reordering never goes below zero.
        self._highest = packet.sequence + _SEQ_MOD
        self._next = self._highest
        self._queue.clear()

    def push(self, packet: RtpPacket, now: float) -> bool:
        """Queue ``packet``; returns False when it was dropped (late or duplicate)."""
        self._received += 1
        if self._ssrc != packet.ssrc or self._highest is None:
            self._restart(packet)
        ext = self._extend(packet.sequence)
        assert self._next is not None and self._highest is not None
        if abs(ext - self._highest) > _MAX_SEQ_JUMP:
            self._restart(packet)
            ext = self._next
        if ext < self._next:
            self._late += 1
            return False
        if ext in self._queue:
            self._duplicates += 1
            return False
        if ext < self._highest:
            self._reordered += 1
        self._highest = max(self._highest, ext)
        self._queue[ext] = (packet, now)
        while len(self._queue) > self._max_size:
            # Nobody is popping fast enough: drop the oldest rather than grow.
            self._skip_to_oldest()
            if self._pop_next() is not None:
                self._played -= 1
                self._overflowed += 1
        return True

    def _skip_to_oldest(self) -> None:
        assert self._next is not None
        oldest = min(self._queue)
        self._lost += oldest - self._next
        self._next = oldest

    def _pop_next(self) -> RtpPacket | None:
        assert self._next is not None
        item = self._queue.pop(self._next, None)
        if item is None:
            return None
        self._next += 1
        self._played += 1
        return item[0]

    def pop(self, now: float) -> RtpPacket | None:
        """The next packet in order, or None when it is missing and still worth waiting for."""
        if not self._queue or self._next is None:
            return None
        if self._next not in self._queue:
            oldest_arrival = min(arrived for _, arrived in self._queue.values())
            if len(self._queue) < self._depth and now - oldest_arrival < self._max_delay_s:
                return None
            self._skip_to_oldest()
        return self._pop_next()

    def clear(self) -> None:
        """Drop everything queued (e.g. on hold); the next packet restarts the stream."""
        self._queue.clear()
        self._ssrc = None
        self._highest = self._next = None

    def __len__(self) -> int:
        return len(self._queue)

    def statistics(self) -> JitterBufferStatistics:
        return JitterBufferStatistics(
            received=self._received,
            played=self._played,
            lost=self._lost,
            late=self._late,
            duplicates=self._duplicates,
            reordered=self._reordered,
            resets=self._resets,
            overflowed=self._overflowed,
            buffered=len(self._queue),
        )


class RtpSender:
    """Send-side RTP state for one stream.

    ``next_packet(payload)`` stamps the next sequence number and the current timestamp,
    then advances the timestamp by ``len(payload)`` samples (G.711: one byte per sample,
    so 160 per 20 ms frame). The marker bit is set on the first packet and on the first
    packet after :meth:`start_talkspurt` (RFC 3551 §4.1). Call :meth:`skip` for frames
    not sent (silence suppression) so the timestamp keeps tracking real time.
    """

    def __init__(
        self, *, ssrc: int, payload_type: int, initial_sequence: int = 0, initial_timestamp: int = 0
    ) -> None:
        if not 0 <= ssrc < _TS_MOD or not 0 <= payload_type <= 127:
            raise ValueError("SSRC or payload type out of range")
        self.ssrc = ssrc
        self.payload_type = payload_type
        self._sequence = initial_sequence % _SEQ_MOD
        self._timestamp = initial_timestamp % _TS_MOD
        self._marker_pending = True
        self.packets_sent = 0
        self.octets_sent = 0

    @property
    def sequence(self) -> int:
        """Sequence number the next packet will carry."""
        return self._sequence

    @property
    def timestamp(self) -> int:
        """Timestamp the next packet will carry."""
        return self._timestamp

    def start_talkspurt(self) -> None:
        """Mark the next packet as the start of a talkspurt (after silence)."""
        self._marker_pending = True

    def skip(self, samples: int) -> None:
        """Advance the timestamp over ``samples`` not sent."""
        self._timestamp = (self._timestamp + samples) % _TS_MOD

    def next_packet(self, payload: bytes, *, samples: int | None = None) -> RtpPacket:
        """Build the next packet; ``samples`` defaults to ``len(payload)`` (G.711)."""
        packet = RtpPacket(
            payload_type=self.payload_type,
            sequence=self._sequence,
            timestamp=self._timestamp,
            ssrc=self.ssrc,
            payload=payload,
            marker=self._marker_pending,
        )
        self._marker_pending = False
        self._sequence = (self._sequence + 1) % _SEQ_MOD
        self.skip(len(payload) if samples is None else samples)
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return packet


class RtpActivity:
    """Watchdog for a media stream: when did the last RTP packet arrive?

    Created with the call's start time, so a stream that never starts times out too.
    """

    def __init__(self, now: float) -> None:
        self._last = now
        self.packets = 0

    def on_packet(self, now: float) -> None:
        self._last = max(self._last, now)
        self.packets += 1

    @property
    def last_packet_at(self) -> float:
        return self._last

    def is_timed_out(self, now: float, timeout_s: float) -> bool:
        """True when no packet arrived in the last ``timeout_s`` seconds."""
        return now - self._last >= timeout_s

    def deadline(self, timeout_s: float) -> float:
        """The time at which :meth:`is_timed_out` turns True if no packet arrives."""
        return self._last + timeout_s
