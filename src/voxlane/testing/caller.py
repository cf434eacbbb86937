"""A scripted caller for a ``LocalRoom``: speaks (tone audio the fakes recognize), pauses,
hangs up — on the loop clock, so it runs on virtual time in tests."""

from __future__ import annotations

import asyncio

from voxlane.media import AudioFrame, split_frames
from voxlane.room import DisconnectReason
from voxlane.testing.fakes import FakeSTT
from voxlane.transports.local import LocalParticipant, LocalRoom


class ScriptedCaller:
    def __init__(
        self,
        room: LocalRoom,
        *,
        stt: FakeSTT | None = None,
        identity: str = "caller",
        words_per_second: float = 3.0,
        frame_duration: float = 0.02,
    ) -> None:
        self.room = room
        self.stt = stt
        self.participant: LocalParticipant = room.join(identity)
        self.words_per_second = words_per_second
        self.frame_duration = frame_duration
        """Seconds per pushed frame (longer frames: fewer loop turns, coarser timing)."""

    def frames_for(self, text: str) -> list[AudioFrame]:
        seconds = max(0.3, len(text.split()) / self.words_per_second)
        tone = AudioFrame.tone(seconds, self.room.sample_rate, freq=220.0)
        return split_frames(tone, self.frame_duration)

    async def say(self, text: str, *, trailing_silence: float = 0.0) -> None:
        """Speak ``text`` (the fake STT will recognize it), then stay silent a while."""
        if self.stt is not None:
            self.stt.expect(text)
        await self.participant.stream_audio(self.frames_for(text))
        if trailing_silence:
            await self.silence(trailing_silence)

    async def speak(self, audio: AudioFrame, *, fraction: float = 1.0) -> None:
        """Stream real audio (e.g. synthesized speech) at real-time pace; with ``fraction``
        < 1, stop part-way (hang up mid-sentence)."""
        frames = split_frames(audio)
        await self.participant.stream_audio(frames[: max(1, round(len(frames) * fraction))])

    async def say_partially(self, text: str, fraction: float) -> None:
        """Start saying ``text`` and stop after ``fraction`` of it (e.g. to hang up mid-word)."""
        if self.stt is not None:
            self.stt.expect(text)
        frames = self.frames_for(text)
        await self.participant.stream_audio(frames[: max(1, int(len(frames) * fraction))])

    async def silence(self, seconds: float) -> None:
        await self.participant.stream_audio(
            split_frames(AudioFrame.silence(seconds, self.room.sample_rate), self.frame_duration)
        )

    async def silence_until(self, event: asyncio.Event, timeout: float) -> bool:
        """Keep the line open (silence frames, like a real phone line) until ``event`` is set
        or ``timeout`` passes. Returns whether the event was set."""
        clock = self.room.clock
        deadline = clock.now() + timeout
        frame = AudioFrame.silence(0.02, self.room.sample_rate)
        t = clock.now()
        while not event.is_set() and clock.now() < deadline and self.participant.connected:
            self.participant.push_frame(frame)
            t += frame.duration
            await clock.sleep_until(t)
        return event.is_set()

    def hang_up(self, reason: DisconnectReason = DisconnectReason.HANGUP) -> None:
        self.participant.leave(reason)
