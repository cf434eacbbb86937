"""One call's media over UDP: an RTP socket, the receive path and the paced send path.

Receive: datagram → :func:`parse_rtp` → :class:`JitterBuffer` → (on arrival, and on a
50 ms tick for packets held behind a hole) G.711 decode → PCM16 8 kHz
:class:`AudioFrame` into a bounded ``drop_oldest`` channel that the room hands to the
session as the caller's audio. When no audio arrives for ``SILENCE_FILL_S`` (the caller's
phone suppresses silence — many send no RTP while nobody talks — or the network lost it),
the tick fills the caller's timeline with silence frames, as a media stack plays comfort
noise: the session's VAD and STT must hear the end of an utterance, not a stopped clock.
The same tick watches :class:`RtpActivity`: no packet for ``rtp_timeout_s`` = the caller
is gone, reported once through ``on_timeout``.

Send: the agent's frames (any rate) → :class:`StreamResampler` to 8 kHz →
:class:`FrameChunker` 20 ms → :class:`PacedAudioOutput` (real-time pace on the loop clock)
→ G.711 encode → :class:`RtpSender` packet → ``sendto``. Each packet's send interval is
kept against the 20 ms its timestamp advanced (``send_jitter``) so the benchmark can
measure send jitter.

Where RTP goes: :class:`~.addresses.RtpLatch` decides (symmetric RTP: the SDP address, if
allowed, until the caller's first packet, then that packet's source, if it is the SDP's or
the SIP source's IP and allowed). Its destination is an IP literal, so ``sendto`` never
resolves a name on the loop; or None (an SDP address outside the allowlist, not latched
yet): the frames due meanwhile are not sent, only counted (``frames_unsent``).

Ownership: :class:`RtpStream` owns its socket and its tick task; :meth:`RtpStream.aclose`
always releases both (idempotent, bounded, never raises).
"""

from __future__ import annotations

import asyncio
import errno
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voxlane.aio.channel import BoundedChannel
from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.tasks import TaskOwner
from voxlane.media import AudioFrame
from voxlane.resample import FrameChunker, StreamResampler
from voxlane.room import AudioOutput, PlaybackFinished
from voxlane.transports.paced import PacedAudioOutput

from . import g711
from .addresses import ALLOW_ALL, Allowlist, RtpLatch
from .common import Address
from .errors import RtpParseError
from .rtp import JitterBuffer, RtpActivity, RtpSender, parse_rtp
from .sdp import AudioNegotiation

__all__ = ["RtpAudioOutput", "RtpStatistics", "RtpStream", "open_rtp_stream"]

SAMPLE_RATE = 8000
FRAME_S = 0.02
FRAME_SAMPLES = 160
# The receive side's timer: holes the jitter buffer gave up on (max_delay 80 ms) are
# skipped within this; arrivals play out at once. Also the RTP timeout's resolution.
TICK_S = 0.05
INPUT_BUFFER_FRAMES = 100  # 2 s of caller audio; older frames are dropped if nobody reads
JITTER_SAMPLES = 4096  # per stream, for the jitter benchmark
LOUD = 1000  # a sent frame peaking above this is audible (not silence), for tests/reports
# No caller audio for this long (beyond the jitter buffer's 80 ms wait): fill with silence.
SILENCE_FILL_S = 0.2
# A gap this long inside a segment (an underrun) also starts a new talkspurt.
_TALKSPURT_GAP_S = 0.06


@dataclass(frozen=True, slots=True)
class RtpStatistics:
    """Counters of one stream. ``garbage``: datagrams that were not RTP; ``foreign``:
    RTP of another payload type than the negotiated one (DTMF, comfort noise), or from an
    address the stream does not take RTP from; ``frames_unsent``: 20 ms frames of ours
    that were due while there was nowhere to send them (the SDP address is outside the
    allowlist and the caller's RTP has not latched the stream yet)."""

    packets_in: int
    packets_out: int
    lost: int
    late: int
    duplicates: int
    garbage: int
    foreign: int
    frames_dropped: int
    send_errors: int
    loud_packets_out: int
    frames_unsent: int


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self._on_datagram = on_datagram
        self.errors = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a caller that vanished: the RTP timeout handles it.
        self.errors += 1


class RtpAudioOutput(AudioOutput):
    """The agent's audio as paced G.711 RTP. Frames of any rate are accepted (resampled).

    ``send(frame, starts_talkspurt)`` is called at each 20 ms frame's playout time; the
    first frame of each segment (after ``flush``) starts a talkspurt, so the silence
    between two replies is a talkspurt boundary (marker bit), not jitter. ``flush`` drops
    a sub-frame remainder (< 20 ms) rather than pad it: the next segment starts clean.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, send: Callable[[AudioFrame, bool], None], *, clock: Clock) -> None:
        self._send = send
        self._paced = PacedAudioOutput(self._play, sample_rate=SAMPLE_RATE, clock=clock)
        self._resampler: StreamResampler | None = None
        self._chunker = FrameChunker(SAMPLE_RATE, FRAME_SAMPLES)
        self._segment_start = True
        # First frames of queued segments, in play order (identity, not equality).
        self._spurt_starts: deque[AudioFrame] = deque()

    async def capture_frame(self, frame: AudioFrame) -> None:
        if self._resampler is None or self._resampler.in_rate != frame.sample_rate:
            self._resampler = StreamResampler(frame.sample_rate, SAMPLE_RATE)
        for chunk in self._chunker.push(self._resampler.push(frame)):
            if self._segment_start:
                self._segment_start = False
                self._spurt_starts.append(chunk)
            await self._paced.capture_frame(chunk)

    def _play(self, frame: AudioFrame) -> None:
        starts = bool(self._spurt_starts) and frame is self._spurt_starts[0]
        if starts:
            self._spurt_starts.popleft()
        self._send(frame, starts)

    def flush(self) -> None:
        self._chunker.flush()  # discard the remainder (see the class docstring)
        self._segment_start = True
        self._paced.flush()

    def clear_buffer(self) -> None:
        self._chunker.flush()
        self._segment_start = True
        self._spurt_starts.clear()
        self._paced.clear_buffer()

    async def wait_for_playout(self) -> PlaybackFinished:
        return await self._paced.wait_for_playout()

    async def aclose(self) -> None:
        await self._paced.aclose()

    def abort(self) -> None:
        self._paced.abort()

    @property
    def frames_played(self) -> int:
        return self._paced.frames_played


class RtpStream:
    """One call's RTP socket and media paths. Create with :func:`open_rtp_stream`.

    Lifecycle: open (socket bound, packets received but not yet played out) →
    :meth:`start` (remote address and codec known: playout tick and sending begin) →
    :meth:`aclose`. ``on_timeout`` is called once (from the tick) when no packet arrived
    for ``rtp_timeout_s`` since :meth:`start` or the last packet.
    """

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _RtpProtocol, *,
                 rtp_timeout_s: float, clock: Clock, name: str) -> None:
        self._transport = transport
        self._protocol = protocol
        self._clock = clock
        self._rtp_timeout_s = rtp_timeout_s
        self.name = name
        self.local_port: int = int(transport.get_extra_info("sockname")[1])
        self.audio_in: BoundedChannel[AudioFrame] = BoundedChannel(
            INPUT_BUFFER_FRAMES, overflow="drop_oldest")
        self.output = RtpAudioOutput(self._send_frame, clock=clock)
        self.on_timeout: Callable[[], None] | None = None
        self.send_jitter: deque[float] = deque(maxlen=JITTER_SAMPLES)
        """Recent send-interval deviations from 20 ms, in seconds (within talkspurts)."""
        self._owner = TaskOwner(f"rtp:{name}", clock=clock)
        self._jitter = JitterBuffer()
        self._activity: RtpActivity | None = None
        self._negotiation: AudioNegotiation | None = None
        self._latch: RtpLatch | None = None
        self._sender: RtpSender | None = None
        self._last_send: float | None = None
        self.talkspurts = 0
        self._packets_in = self._garbage = self._foreign = self._send_errors = 0
        self._loud_out = self._unsent = 0
        self._timed_out = False
        self._closed = False
        self._input_until: float | None = None  # loop time the caller's audio reaches
        self.silence_filled_s = 0.0

    # -- lifecycle -------------------------------------------------------------------

    def start(self, negotiation: AudioNegotiation, *, signaling_host: str | None = None,
              allowlist: Allowlist = ALLOW_ALL) -> None:
        """Begin media with the negotiated codec and remote address. Call once.

        ``signaling_host``: the IP the call's INVITE came from, which may latch the stream
        (a caller behind a NAT); ``allowlist``: the server's allowed sources, which a
        latched address must be in. Raises ``ValueError`` when the negotiated host is not
        an IP literal (:func:`~.sdp.negotiate` never returns one that is not).
        """
        if self._closed or self._negotiation is not None:
            return
        self._latch = RtpLatch((negotiation.remote_host, negotiation.remote_port),
                               signaling_host=signaling_host, allowlist=allowlist)
        self._negotiation = negotiation
        self._sender = RtpSender(ssrc=secrets.randbits(32),
                                 payload_type=negotiation.payload_type,
                                 initial_sequence=secrets.randbelow(1 << 16),
                                 initial_timestamp=secrets.randbits(32))
        self._activity = RtpActivity(self._clock.now())
        self._owner.spawn(self._tick(), name="playout")

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def destination(self) -> Address | None:
        """Where our RTP goes (an IP literal), or None: before :meth:`start`, or while an
        SDP address outside the allowlist waits for the caller's RTP to latch."""
        return None if self._latch is None else self._latch.destination

    async def aclose(self, deadline: float | None = None) -> None:
        """Stop media, close the input channel and the socket. Idempotent; never raises;
        the socket is closed even when the output's close times out or is cancelled."""
        if self._closed:
            return
        self._closed = True
        self.audio_in.close()
        end = deadline if deadline is not None else self._clock.now() + 1.0
        try:
            out = asyncio.ensure_future(self.output.aclose())
            done, _ = await asyncio.wait({out}, timeout=max(0.0, end - self._clock.now()))
            if not done:
                out.cancel()
                self.output.abort()
            await self._owner.shutdown(end)
        finally:
            self._transport.close()

    # -- receive path ----------------------------------------------------------------

    def _on_datagram(self, data: bytes, source: Address) -> None:
        if self._closed:
            return
        try:
            packet = parse_rtp(data)
        except RtpParseError:
            self._garbage += 1
            return
        if not self._accept_source(packet.payload_type, source):
            self._foreign += 1
            return
        now = self._clock.now()
        self._packets_in += 1
        self._jitter.push(packet, now)
        if self._activity is not None:
            self._activity.on_packet(now)
        # Play out on arrival: no per-call 20 ms wakeup just to poll the jitter buffer.
        self._play_out(now)

    def _accept_source(self, payload_type: int, source: Address) -> bool:
        """Symmetric-RTP latching (:class:`~.addresses.RtpLatch`): the first packet of a
        negotiated payload type from the caller fixes the peer's address; later packets
        from elsewhere are ignored (a stray or spoofed stream would otherwise restart the
        jitter buffer, or redirect our audio)."""
        neg, latch = self._negotiation, self._latch
        if neg is None or latch is None:
            return False
        return latch.accept(source, may_latch=payload_type in (neg.payload_type,
                                                                 neg.telephone_event))

    def _play_out(self, now: float) -> None:
        """Move what the jitter buffer releases into the input channel, decoded."""
        if self._negotiation is None or self.audio_in.closed:
            return
        pt = self._negotiation.payload_type
        while (packet := self._jitter.pop(now)) is not None:
            if packet.payload_type != pt:
                self._foreign += 1  # telephone-event / comfort noise: not audio
                continue
            frame = AudioFrame(g711.decode(pt, packet.payload).tobytes(), SAMPLE_RATE)
            self.audio_in.send_nowait(frame)
            self._input_until = now

    def _fill_silence(self, now: float) -> None:
        """Keep the caller's timeline going through a gap in the RTP (see the module
        docstring): whole 20 ms frames of silence up to ``now``."""
        if self._input_until is None or self.audio_in.closed:
            return
        gap = now - self._input_until
        if gap < SILENCE_FILL_S:
            return
        frames = int(gap / FRAME_S)
        self.audio_in.send_nowait(AudioFrame.silence(frames * FRAME_S, SAMPLE_RATE))
        self._input_until += frames * FRAME_S
        self.silence_filled_s += frames * FRAME_S

    async def _tick(self) -> None:
        """Every ``TICK_S``: release packets held behind a hole that timed out (arrivals
        release everything else at once), fill gaps with silence, and watch for the RTP
        timeout."""
        assert self._activity is not None
        next_at = self._clock.now()
        while not self._closed:
            now = self._clock.now()
            self._play_out(now)
            self._fill_silence(now)
            if not self._timed_out and self._activity.is_timed_out(now, self._rtp_timeout_s):
                self._timed_out = True
                if self.on_timeout is not None:
                    self.on_timeout()
            next_at = max(next_at + TICK_S, now)  # no catch-up bursts after a stall
            await self._clock.sleep_until(next_at)

    # -- send path -------------------------------------------------------------------

    def _send_frame(self, frame: AudioFrame, starts_talkspurt: bool) -> None:
        """Sink of the paced output: runs at each 20 ms frame's playout time."""
        if self._sender is None or self._latch is None or self._closed:
            return
        destination = self._latch.destination
        if destination is None:
            # Nowhere we may send yet (an SDP address outside the allowlist, not latched):
            # the frame's time passes unsent, as a lost packet would.
            self._unsent += 1
            return
        now = self._clock.now()
        if (starts_talkspurt or self._last_send is None
                or now - self._last_send > _TALKSPURT_GAP_S):
            if self._last_send is not None:
                # Keep the RTP timestamp on real time across the silence (RFC 3550 §5.1).
                gap = now - self._last_send - FRAME_S
                self._sender.skip(max(0, round(gap * SAMPLE_RATE)))
            self._sender.start_talkspurt()
            self.talkspurts += 1
        else:
            # RFC 3550 §6.4.1's D(i-1, i) seen from the sender: send interval minus the
            # 20 ms the timestamps advanced. Its spread is what the far end's jitter
            # buffer has to absorb.
            self.send_jitter.append(now - self._last_send - FRAME_S)
        self._last_send = now
        pcm = frame.to_numpy()
        if pcm.size and int(np.abs(pcm.astype(np.int32)).max()) > LOUD:
            self._loud_out += 1
        payload = g711.encode(self._sender.payload_type, pcm)
        try:
            self._transport.sendto(self._sender.next_packet(payload).to_bytes(), destination)
        except OSError:
            self._send_errors += 1

    def statistics(self) -> RtpStatistics:
        jb = self._jitter.statistics()
        return RtpStatistics(
            packets_in=self._packets_in,
            packets_out=self._sender.packets_sent if self._sender else 0,
            lost=jb.lost, late=jb.late, duplicates=jb.duplicates, garbage=self._garbage,
            foreign=self._foreign, frames_dropped=self.audio_in.statistics().dropped,
            send_errors=self._send_errors + self._protocol.errors,
            loud_packets_out=self._loud_out, frames_unsent=self._unsent,
        )


async def open_rtp_stream(host: str, *, port_range: tuple[int, int] | None = None,
                          rtp_timeout_s: float = 10.0, clock: Clock = DEFAULT_CLOCK,
                          name: str = "call") -> RtpStream:
    """Bind an RTP socket on ``host``: the first free even port of ``port_range``
    (inclusive), or an ephemeral port when None. Raises ``OSError`` when none is free."""
    loop = asyncio.get_running_loop()
    stream: RtpStream | None = None

    def on_datagram(data: bytes, source: Address) -> None:
        if stream is not None:
            stream._on_datagram(data, source)

    ports: list[int] = [0] if port_range is None else list(
        range(port_range[0] + port_range[0] % 2, port_range[1] + 1, 2))
    last_error: OSError = OSError(errno.EADDRINUSE, "no free RTP port in range")
    for port in ports:
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _RtpProtocol(on_datagram), local_addr=(host, port))
        except OSError as exc:
            last_error = exc
            continue
        stream = RtpStream(transport, protocol, rtp_timeout_s=rtp_timeout_s, clock=clock,
                           name=name)
        return stream
    raise last_error
