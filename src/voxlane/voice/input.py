"""User input: room audio → STT and VAD streams → turn tracking → user turns.

``UserInput`` feeds frames to the streams, reads their events into the pure
``TurnTracker``, and tells its listener when the user starts speaking (barge-in), what was
transcribed, and when a turn is complete. At close, ``finish`` stops the feed, asks the STT
for its trailing transcript only if the user was mid-utterance, and returns whatever was
said and not yet committed — so a caller's last words are never lost (DESIGN I6) and a
silent caller's close waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from voxlane.aio.clock import Clock
from voxlane.aio.closing import ResourceStack
from voxlane.aio.tasks import TaskOwner, wait_event
from voxlane.core.turns import TurnTracker, UserState
from voxlane.media import AudioFrame
from voxlane.providers.stt import STT, SpeechEventType, STTStream
from voxlane.providers.vad import VAD, VADEventType, VADStream
from voxlane.voice.report import Usage


class InputListener(Protocol):
    def on_user_state(self, old: UserState, new: UserState) -> None: ...

    def on_user_speech_started(self) -> None: ...

    def on_transcript(self, text: str, is_final: bool) -> None: ...

    def on_user_turn(self, text: str) -> None: ...


class UserInput:
    def __init__(
        self,
        *,
        stt: STT | None,
        vad: VAD | None,
        listener: InputListener,
        owner: TaskOwner,
        streams: ResourceStack,
        clock: Clock,
        usage: Usage,
        min_endpoint_delay: float,
    ) -> None:
        self._stt, self._vad = stt, vad
        self._listener = listener
        self._owner = owner
        self._streams = streams
        self._clock = clock
        self._usage = usage
        self.tracker = TurnTracker(min_endpoint_delay=min_endpoint_delay)
        self._stt_stream: STTStream | None = None
        self._vad_stream: VADStream | None = None
        self._feed: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.speech_ended_at: float | None = None
        self.final_at: float | None = None
        self._stt_quiet = asyncio.Event()  # set when no trailing final is expected
        self._stt_quiet.set()

    def attach(self, frames: AsyncIterator[AudioFrame], *, sample_rate: int) -> None:
        """Open the streams (registered for teardown at once) and start feeding them."""
        if self._stt is not None:
            self._stt_stream = self._stt.stream(sample_rate=sample_rate)
            self._streams.push(self._stt.label, self._stt_stream)
            self._owner.spawn(self._read_stt(self._stt_stream), name="stt")
        if self._vad is not None:
            self._vad_stream = self._vad.stream(sample_rate=sample_rate)
            self._streams.push(self._vad.label, self._vad_stream)
            self._owner.spawn(self._read_vad(self._vad_stream), name="vad")
        self._owner.spawn(self._endpointing(), name="endpointing")
        self._feed = self._owner.spawn(self._forward(frames), name="input-feed")

    async def _forward(self, frames: AsyncIterator[AudioFrame]) -> None:
        async for frame in frames:
            self._usage.stt_audio_s += frame.duration
            if self._stt_stream is not None:
                self._stt_stream.push_frame(frame)
            if self._vad_stream is not None:
                self._vad_stream.push_frame(frame)

    # -- events -----------------------------------------------------------------------------
    def _speech_started(self) -> None:
        old = self.tracker.state
        if self.tracker.on_speech_start(self._clock.now()):
            self._listener.on_user_state(old, self.tracker.state)
            self._listener.on_user_speech_started()
        self._wake.set()

    def _speech_ended(self) -> None:
        old = self.tracker.state
        self.speech_ended_at = self._clock.now()
        self.tracker.on_speech_end(self.speech_ended_at)
        if old is not self.tracker.state:
            self._listener.on_user_state(old, self.tracker.state)
        self._wake.set()

    async def _read_stt(self, stream: STTStream) -> None:
        # With a VAD, speech start/end come from it (faster barge-in); STT gives text only.
        use_stt_vad = self._vad is None
        try:
            async for ev in stream:
                if ev.type is SpeechEventType.START_OF_SPEECH:
                    self._stt_quiet.clear()
                    if use_stt_vad:
                        self._speech_started()
                elif ev.type is SpeechEventType.INTERIM_TRANSCRIPT:
                    self._stt_quiet.clear()
                    self.tracker.on_interim(ev.text)
                    self._listener.on_transcript(ev.text, False)
                elif ev.type is SpeechEventType.FINAL_TRANSCRIPT:
                    self.final_at = self._clock.now()
                    self.tracker.on_final(ev.text, self.final_at)
                    self._stt_quiet.set()
                    if ev.text.strip():
                        self._listener.on_transcript(ev.text, True)
                    self._wake.set()
                elif ev.type is SpeechEventType.END_OF_SPEECH and use_stt_vad:
                    self._speech_ended()
        finally:
            self._stt_quiet.set()

    async def _read_vad(self, stream: VADStream) -> None:
        async for ev in stream:
            if ev.type is VADEventType.START_OF_SPEECH:
                self._stt_quiet.clear()
                self._speech_started()
            else:
                self._speech_ended()

    async def _endpointing(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            deadline = self.tracker.next_deadline()
            timer = loop.call_at(deadline, self._wake.set) if deadline is not None else None
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()
            text = self.tracker.poll(self._clock.now())
            if text:
                self._listener.on_user_turn(text)

    # -- close ------------------------------------------------------------------------------
    def detach(self) -> None:
        """Stop feeding audio (the caller is gone or the session is closing)."""
        if self._feed is not None:
            self._feed.cancel()

    @property
    def expects_trailing_final(self) -> bool:
        """Whether :meth:`finish` would wait: the user was mid-utterance, or a final
        transcript is still due from the STT."""
        return self._stt_stream is not None and (
            self.tracker.mid_utterance or not self._stt_quiet.is_set()
        )

    async def finish(self, deadline: float) -> str | None:
        """Close path: stop input; if the user was mid-utterance, wait (≤ ``deadline``) for the
        STT's trailing final. Returns the uncommitted text, if any. Never waits otherwise."""
        self.detach()
        if self._vad_stream is not None:
            self._vad_stream.end_input()
        if self._stt_stream is not None:
            if self.expects_trailing_final:
                self._stt_stream.end_input()
                await wait_event(self._stt_quiet, deadline, self._clock.now())
            else:
                self._stt_stream.end_input()
        return self.tracker.flush()
