"""Fake providers for tests and the first demo: deterministic, instant, recorded.

Every fake stream registers in the resource ledger while open and records its open/close
in its factory's ``streams`` list. Speech is simulated with energy: a frame louder than
``threshold`` is speech. ``FakeSTT`` turns each contiguous stretch of speech into the next
scripted utterance; ``FakeVAD`` reports its start and end; ``FakeTTS`` turns text into a
tone whose length is proportional to the text; ``FakeLLM`` plays scripted replies,
including tool calls.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from voxlane.aio.channel import BoundedChannel
from voxlane.chat import ChatContext, ToolCall, ToolSpec
from voxlane.errors import ChannelClosedError, ProviderError
from voxlane.media import AudioFrame
from voxlane.providers.llm import LLM, ChatChunk, LLMStream
from voxlane.providers.stt import STT, SpeechEvent, SpeechEventType, STTStream
from voxlane.providers.tts import TTS, TTSStream
from voxlane.providers.vad import VAD, VADEvent, VADEventType, VADStream

DEFAULT_THRESHOLD = 300.0


class _EnergyDetector:
    """Speech start after ``min_speech`` s of loud frames; end after ``min_silence`` s quiet."""

    def __init__(self, threshold: float, min_speech: float, min_silence: float) -> None:
        self.threshold, self.min_speech, self.min_silence = threshold, min_speech, min_silence
        self.speaking = False
        self.position = 0.0
        self._loud = 0.0
        self._quiet = 0.0
        self.voiced = 0.0

    def push(self, frame: AudioFrame) -> str | None:
        """Returns "start", "end" or None."""
        self.position += frame.duration
        if frame.rms() > self.threshold:
            self._loud += frame.duration
            self._quiet = 0.0
            if self.speaking:
                self.voiced += frame.duration
            elif self._loud >= self.min_speech:
                self.speaking = True
                self.voiced = self._loud
                return "start"
        else:
            self._loud = 0.0
            self._quiet += frame.duration
            if self.speaking and self._quiet >= self.min_silence:
                self.speaking = False
                return "end"
        return None


class _FakeStreamBase:
    """Shared event plumbing: a bounded event channel and failure injection."""

    def _init_events(self, maxsize: int = 1024) -> None:
        self._events: BoundedChannel[Any] = BoundedChannel(maxsize)
        self._error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        """The next read raises ``error`` (a provider failure)."""
        self._error = error
        self._events.close()

    async def _next_event(self) -> Any:
        try:
            return await self._events.receive()
        except ChannelClosedError:
            if self._error is not None:
                raise self._error from None
            raise StopAsyncIteration from None


class FakeSTTStream(STTStream, _FakeStreamBase):
    def __init__(self, owner: FakeSTT, sample_rate: int) -> None:
        super().__init__(label=owner.label)
        self._owner = owner
        self.sample_rate = sample_rate
        self._detector = _EnergyDetector(owner.threshold, 0.06, owner.end_silence)
        self._text = ""
        self._words_sent = 0
        self._init_events()
        self.frames = 0
        self.input_ended = False
        self._mark_open()

    def push_frame(self, frame: AudioFrame) -> None:
        if self._closed or self.input_ended:
            return
        self.frames += 1
        edge = self._detector.push(frame)
        if edge == "start":
            self._text = self._owner.next_utterance()
            self._words_sent = 0
            self._emit(SpeechEvent(SpeechEventType.START_OF_SPEECH))
        elif edge == "end":
            self._finalize()
        elif self._detector.speaking:
            words = self._text.split()
            n = min(len(words), int(self._detector.voiced / self._owner.seconds_per_word))
            if n > self._words_sent:
                self._words_sent = n
                self._emit(SpeechEvent(SpeechEventType.INTERIM_TRANSCRIPT, " ".join(words[:n])))

    def _finalize(self) -> None:
        self._emit(SpeechEvent(SpeechEventType.FINAL_TRANSCRIPT, self._text))
        self._emit(SpeechEvent(SpeechEventType.END_OF_SPEECH))
        self._text = ""

    def _emit(self, event: SpeechEvent) -> None:
        if not self._events.closed:
            self._events.send_nowait(event)

    def end_input(self) -> None:
        """Flush speech in progress as a final transcript, then end the iteration."""
        if self.input_ended:
            return
        self.input_ended = True
        if self._detector.speaking:
            self._detector.speaking = False
            self._finalize()
        self._events.close()

    async def __anext__(self) -> SpeechEvent:
        event: SpeechEvent = await self._next_event()
        return event

    async def _aclose_impl(self) -> None:
        self._events.close()
        await self._owner.close_behavior()

    def _abort_impl(self) -> None:
        self._events.close()


class FakeSTT(STT):
    """Scripted recognizer. ``utterances`` are recognized in order, one per speech stretch;
    ``expect(text)`` appends one. Unscripted speech is recognized as ``fallback_text``."""

    def __init__(
        self,
        utterances: Sequence[str] = (),
        *,
        threshold: float = DEFAULT_THRESHOLD,
        end_silence: float = 0.3,
        seconds_per_word: float = 0.3,
        fallback_text: str = "hello",
        label: str = "fake-stt",
    ) -> None:
        self.label = label
        self.threshold = threshold
        self.end_silence = end_silence
        self.seconds_per_word = seconds_per_word
        self.fallback_text = fallback_text
        self._script: deque[str] = deque(utterances)
        self.streams: list[FakeSTTStream] = []

    def expect(self, text: str) -> None:
        self._script.append(text)

    def next_utterance(self) -> str:
        return self._script.popleft() if self._script else self.fallback_text

    def stream(self, *, sample_rate: int = 16000) -> FakeSTTStream:
        s = FakeSTTStream(self, sample_rate)
        self.streams.append(s)
        return s

    async def close_behavior(self) -> None:
        """Override to make ``aclose`` slow, hang or raise (see the adversarial subclasses)."""


class FakeVADStream(VADStream, _FakeStreamBase):
    def __init__(self, owner: FakeVAD) -> None:
        super().__init__(label=owner.label)
        self._detector = _EnergyDetector(owner.threshold, owner.min_speech, owner.min_silence)
        self._init_events()
        self._mark_open()

    def push_frame(self, frame: AudioFrame) -> None:
        if self._closed or self._events.closed:
            return
        edge = self._detector.push(frame)
        if edge is not None:
            kind = VADEventType.START_OF_SPEECH if edge == "start" else VADEventType.END_OF_SPEECH
            self._events.send_nowait(VADEvent(kind, self._detector.position))

    def end_input(self) -> None:
        self._events.close()

    async def __anext__(self) -> VADEvent:
        event: VADEvent = await self._next_event()
        return event

    def _abort_impl(self) -> None:
        self._events.close()


class FakeVAD(VAD):
    def __init__(
        self,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        min_speech: float = 0.06,
        min_silence: float = 0.3,
        label: str = "fake-vad",
    ) -> None:
        self.label = label
        self.threshold, self.min_speech, self.min_silence = threshold, min_speech, min_silence
        self.streams: list[FakeVADStream] = []

    def stream(self, *, sample_rate: int = 16000) -> FakeVADStream:
        s = FakeVADStream(self)
        self.streams.append(s)
        return s


class FakeTTSStream(TTSStream, _FakeStreamBase):
    def __init__(self, owner: FakeTTS) -> None:
        super().__init__(label=owner.label)
        self._owner = owner
        self._init_events(maxsize=20_000)  # text arrives in bursts; 20k frames = 400 s
        self.text: list[str] = []
        self._started = False
        self._mark_open()

    def push_text(self, text: str) -> None:
        if self._events.closed:
            return
        self.text.append(text)
        duration = max(self._owner.frame_s, len(text) * self._owner.seconds_per_char)
        tone = AudioFrame.tone(duration, self._owner.sample_rate, freq=self._owner.freq)
        for i in range(0, len(tone.data), 2 * round(self._owner.frame_s * self._owner.sample_rate)):
            chunk = tone.data[i : i + 2 * round(self._owner.frame_s * self._owner.sample_rate)]
            # The bound is the channel's; a fake producing more than it holds is a test bug.
            if not self._events.send_nowait(AudioFrame(chunk, self._owner.sample_rate)):
                raise ProviderError("fake TTS buffer full", provider=self.label)

    def end_input(self) -> None:
        self._events.close()

    async def __anext__(self) -> AudioFrame:
        if self._owner.first_frame_delay and not self._started:
            self._started = True
            await asyncio.sleep(self._owner.first_frame_delay)
        try:
            frame: AudioFrame = await self._next_event()
        except StopAsyncIteration:
            await self._owner.after_last_frame()
            raise
        return frame

    def _abort_impl(self) -> None:
        self._events.close()


class FakeTTS(TTS):
    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        seconds_per_char: float = 0.05,
        frame_s: float = 0.02,
        freq: float = 440.0,
        first_frame_delay: float = 0.0,
        label: str = "fake-tts",
    ) -> None:
        self.label = label
        self.sample_rate = sample_rate
        self.seconds_per_char = seconds_per_char
        self.chars_per_second = 1.0 / seconds_per_char
        self.frame_s = frame_s
        self.freq = freq
        self.first_frame_delay = first_frame_delay
        self.streams: list[FakeTTSStream] = []

    def stream(self) -> FakeTTSStream:
        s = FakeTTSStream(self)
        self.streams.append(s)
        return s

    async def after_last_frame(self) -> None:
        """Override to make the stream not end (see ``EndlessTTS``)."""


_call_ids = itertools.count(1)


@dataclass
class FakeReply:
    """One scripted LLM round: text (streamed word by word) and/or tool calls."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delay: float = 0.0
    """Seconds before the first chunk (time to first token)."""


Responder = Callable[[ChatContext], FakeReply]


class FakeLLMStream(LLMStream):
    def __init__(self, owner: FakeLLM, reply: FakeReply) -> None:
        super().__init__(label=owner.label)
        chunks: list[ChatChunk] = [ChatChunk(delta=w) for w in _words(reply.text)]
        if reply.tool_calls:
            calls = tuple(
                ToolCall(f"call_{next(_call_ids)}", name, json.dumps(args))
                for name, args in reply.tool_calls
            )
            chunks.append(ChatChunk(tool_calls=calls))
        self._chunks = deque(chunks)
        self._delay = reply.delay
        self._mark_open()

    async def __anext__(self) -> ChatChunk:
        if self._closed or not self._chunks:
            raise StopAsyncIteration
        if self._delay:
            delay, self._delay = self._delay, 0.0
            await asyncio.sleep(delay)
        return self._chunks.popleft()


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts) if p or i]


class FakeLLM(LLM):
    """Scripted LLM. Replies are used in order; then ``responder`` (if any) decides; then it
    echoes the last user message. ``requests`` records every chat context it was given."""

    def __init__(
        self,
        replies: Sequence[FakeReply | str] = (),
        *,
        responder: Responder | None = None,
        label: str = "fake-llm",
    ) -> None:
        self.label = label
        self._script: deque[FakeReply] = deque(
            FakeReply(r) if isinstance(r, str) else r for r in replies
        )
        self._responder = responder
        self.requests: list[tuple[ChatContext, list[ToolSpec]]] = []
        self.streams: list[LLMStream] = []

    def chat(self, ctx: ChatContext, tools: Sequence[ToolSpec] = ()) -> LLMStream:
        self.requests.append((ctx, list(tools)))
        stream = self.make_stream(self._next_reply(ctx))
        self.streams.append(stream)
        return stream

    def make_stream(self, reply: FakeReply) -> LLMStream:
        return FakeLLMStream(self, reply)

    def _next_reply(self, ctx: ChatContext) -> FakeReply:
        if self._script:
            return self._script.popleft()
        if self._responder is not None:
            return self._responder(ctx)
        users = [m.text for m in ctx.messages if m.role == "user"]
        return FakeReply(f"You said: {users[-1]}" if users else "Hello!")
