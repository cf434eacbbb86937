"""GatewaySTT: streaming speech-to-text from a voxlane gateway (``/v1/stt``).

One stream = one recognition session = at most one websocket at a time, registered in the
resource ledger while it is open. Reconnects follow the pure policy in ``core.retry``:

* refused / reset / timeout / 2008 busy → retry after a jittered backoff, spending budget;
  the budget refills after a final transcript or a connection healthy for longer than the
  connect timeout;
* 2007 (the server closed an idle session) while live → *idle*: no budget is spent, and the
  next connection is made lazily, when the next audio frame arrives;
* authentication refused, unsupported settings → fatal: iteration raises a ProviderError
  with a clear message, the session decides (it closes with reason ``error``);
* ``session.closed`` the stream did not ask for (the gateway shutting down) while live →
  like a reset: retry after a backoff;
* after ``end_input()`` or ``aclose()`` → never reconnect (DESIGN I5).

Audio during a reconnect: a backoff lasts its full delay, whatever the caller says
meanwhile; only ``end_input()``/``aclose()`` cut it short (and then nothing is reconnected).
Frames pushed while there is no connection (backoff, connecting, idle) wait in a bounded
buffer (``audio_buffer_s``: the newest 5 s of 20 ms frames by default, older frames dropped
and counted in ``stats.frames_dropped``) and are sent, in order, on the next connection.

``aclose()`` flushes (``session.finalize`` if audio was sent), sends ``session.close``, waits
for ``session.closed`` until its deadline, closes the socket; cancelled or failing, it still
aborts the socket and releases the ledger entry.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from voxlane.aio.channel import BoundedChannel
from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.tasks import TaskOwner, cancel_and_wait, wait_event
from voxlane.core.retry import Backoff, Failure, FailureKind, RetryAction, RetryBudget, classify
from voxlane.errors import (
    ChannelClosedError,
    ProviderConfigError,
    ProviderConnectionError,
    ProviderError,
)
from voxlane.gateway import protocol as p
from voxlane.media import AudioFrame
from voxlane.providers.gateway_ws import failure_error, open_gateway_socket
from voxlane.providers.stt import STT, SpeechEvent, SpeechEventType, STTStream

log = logging.getLogger("voxlane.providers.gateway_stt")

_FATAL_CODES = {
    p.ErrorCode.UNSUPPORTED_SETTINGS: FailureKind.BAD_SETTINGS,
    p.ErrorCode.FRAME_TOO_LARGE: FailureKind.BAD_SETTINGS,
}
_RETRY_CODES = {
    p.ErrorCode.IDLE_TIMEOUT: FailureKind.IDLE_CLOSED,
    p.ErrorCode.SERVER_BUSY: FailureKind.SERVER_BUSY,
    p.ErrorCode.OVERLOADED: FailureKind.SERVER_BUSY,
    p.ErrorCode.ENGINE_ERROR: FailureKind.RESET,
    p.ErrorCode.INTERNAL_ERROR: FailureKind.RESET,
    # We did not read the server's events in time (a stalled loop); a new connection may.
    p.ErrorCode.SLOW_CONSUMER: FailureKind.RESET,
}


class StreamState(Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    IDLE = "idle"  # the server closed an idle session; reconnect on the next audio
    BACKOFF = "backoff"
    FINISHING = "finishing"  # input ended: flushing, then session.close
    CLOSED = "closed"


@dataclass
class GatewaySTTStatistics:
    connections: int = 0
    reconnects: dict[str, int] = field(default_factory=lambda: {"retry": 0, "idle": 0})
    finals: int = 0
    garbage_frames: int = 0
    frames_dropped: int = 0


@dataclass(frozen=True, kw_only=True)
class GatewaySTTOptions:
    url: str
    api_key: str
    language: str = "en"
    phrases: tuple[str, ...] | None = None
    connect_timeout: float = 5.0
    close_timeout: float = 2.0
    max_retries: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    audio_buffer_s: float = 5.0
    """Audio kept while (re)connecting, in 20 ms frames (a longer frame is cut in pieces of
    up to 0.5 s, each counted as one frame); older frames are dropped beyond it."""


class GatewaySTT(STT):
    """Factory of gateway STT streams. ``url`` is ``ws://host:port/v1/stt``.

    One factory serves every call of a process (``voxlane sip --providers local`` shares
    it), so it keeps nothing per stream: a stream is its caller's to close, and is gone
    once the caller drops it."""

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        language: str = "en",
        phrases: tuple[str, ...] | None = None,
        connect_timeout: float = 5.0,
        close_timeout: float = 2.0,
        max_retries: int = 3,
        backoff: Backoff | None = None,
        audio_buffer_s: float = 5.0,
        label: str = "gateway-stt",
        clock: Clock = DEFAULT_CLOCK,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.label = label
        self.options = GatewaySTTOptions(
            url=url,
            api_key=api_key,
            language=language,
            phrases=phrases,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            max_retries=max_retries,
            backoff=backoff or Backoff(),
            audio_buffer_s=audio_buffer_s,
        )
        self._clock = clock
        self._rand = rand

    def stream(self, *, sample_rate: int = 16000) -> GatewaySTTStream:
        """Open a stream (it connects in the background); the caller must ``aclose()`` it."""
        return GatewaySTTStream(self.options, sample_rate, self.label, self._clock, self._rand)


class _Done:
    """End-of-iteration marker in the event channel."""


class GatewaySTTStream(STTStream):
    kind: ClassVar[str] = "stt"

    def __init__(
        self,
        options: GatewaySTTOptions,
        sample_rate: int,
        label: str,
        clock: Clock,
        rand: Callable[[], float],
    ) -> None:
        super().__init__(label=label)
        settings = p.SessionSettings(
            sample_rate=sample_rate, language=options.language, phrases=options.phrases
        )
        try:
            settings.validate()
        except p.ProtocolViolation as exc:
            raise ProviderConfigError(exc.message, provider=label) from exc
        self._opts = options
        self._settings = settings
        self.sample_rate = sample_rate
        self._clock = clock
        self._rand = rand
        self.state = StreamState.CONNECTING
        self.stats = GatewaySTTStatistics()
        self._budget = RetryBudget(
            max_attempts=options.max_retries, healthy_after=options.connect_timeout
        )
        self._audio: BoundedChannel[bytes] = BoundedChannel(
            max(2, round(options.audio_buffer_s / 0.02)), overflow="drop_oldest"
        )
        self._events: BoundedChannel[SpeechEvent | _Done | ProviderError] = BoundedChannel(1024)
        # Two wake-ups, on purpose: audio wakes only an IDLE stream (lazy reconnect); a
        # backoff waits for its deadline or the end of input, never for audio (a caller who
        # keeps talking must not turn the backoff schedule into a burst of reconnects).
        self._audio_or_end = asyncio.Event()  # set by push_frame and end_input
        self._input_done = asyncio.Event()  # set by end_input (aclose and abort too)
        self._input_ended = False
        self._ws: ClientConnection | None = None
        self._owner = TaskOwner(f"{label}-stream", clock=clock)
        self._runner = self._owner.spawn(self._run(), name="connection")

    # -- the STTStream API ----------------------------------------------------------------
    def push_frame(self, frame: AudioFrame) -> None:
        if self._input_ended or self._closed:
            return
        if frame.sample_rate != self.sample_rate:
            raise ValueError(f"frame at {frame.sample_rate} Hz, stream is {self.sample_rate} Hz")
        # Large frames are cut to what the gateway accepts in one message (0.5 s).
        step = self.sample_rate  # bytes in 0.5 s of PCM16
        for i in range(0, len(frame.data), step):
            self._audio.send_nowait(frame.data[i : i + step])
        self.stats.frames_dropped = self._audio.statistics().dropped
        self._audio_or_end.set()

    def end_input(self) -> None:
        """Flush what was said as a final transcript, then end; never reconnect after."""
        if self._input_ended:
            return
        self._input_ended = True
        self._audio.close()
        self._input_done.set()
        self._audio_or_end.set()

    async def __anext__(self) -> SpeechEvent:
        try:
            item = await self._events.receive()
        except ChannelClosedError:
            raise StopAsyncIteration from None
        if isinstance(item, _Done):
            self._events.close()
            raise StopAsyncIteration
        if isinstance(item, ProviderError):
            self._events.close()
            raise item
        return item

    @property
    def live(self) -> bool:
        return not self._input_ended and not self._closed

    # -- connection loop ------------------------------------------------------------------
    async def _run(self) -> None:
        outcome: SpeechEvent | _Done | ProviderError = _Done()
        try:
            while True:
                failure = await self._session_once()
                if failure is None:
                    break
                # A fatal failure is reported even after input ended (it explains why the
                # last transcript is missing); anything else then simply stops.
                fatal = classify(failure, live=True) is RetryAction.FATAL
                action = RetryAction.FATAL if fatal else classify(failure, live=self.live)
                log.info(
                    "%s: %s (%s) -> %s",
                    self.label,
                    failure.kind.value,
                    failure.message,
                    action.value,
                )
                if action is RetryAction.STOP:
                    break
                if action is RetryAction.FATAL:
                    outcome = failure_error(failure, self.label)
                    break
                if action is RetryAction.IDLE:
                    self.stats.reconnects["idle"] += 1
                    self._note_reconnect("idle")
                    if not await self._wait_for_audio():
                        break
                    continue
                if not self._budget.try_spend():
                    outcome = ProviderConnectionError(
                        f"gave up after {self._budget.max_attempts} attempts: {failure.message}",
                        provider=self.label,
                    )
                    break
                self.stats.reconnects["retry"] += 1
                self._note_reconnect("retry")
                self.state = StreamState.BACKOFF
                delay = self._opts.backoff.delay(self._budget.used, self._rand())
                # The full delay, cut short only by the end of input (audio meanwhile waits
                # in the bounded buffer); after that nothing is reconnected (I5).
                now = self._clock.now()
                await wait_event(self._input_done, now + delay, now)
                if not self.live:
                    break
        finally:
            self.state = StreamState.CLOSED
            if not self._events.closed:
                self._events.send_nowait(outcome)

    async def _wait_for_audio(self) -> bool:
        """Idle: wait for the next audio frame (True) or the end of input (False)."""
        self.state = StreamState.IDLE
        while len(self._audio) == 0 and self.live:
            self._audio_or_end.clear()
            # Unbounded on purpose: a caller may stay silent for the whole call; audio,
            # the end of input or the stream's close (which cancels us) ends it.
            await self._audio_or_end.wait()
        return len(self._audio) > 0 and self.live

    async def _session_once(self) -> Failure | None:
        """One connection: create the session, stream, receive. None = ended cleanly."""
        self.state = StreamState.CONNECTING
        ws = await open_gateway_socket(
            self._opts.url,
            self._opts.api_key,
            connect_timeout=self._opts.connect_timeout,
            close_timeout=self._opts.close_timeout,
        )
        if isinstance(ws, Failure):
            return ws
        self._ws = ws
        self._mark_open()
        self.stats.connections += 1
        self._budget.on_connected(self._clock.now())
        sender: asyncio.Task[None] | None = None
        try:
            await ws.send(p.encode_client_message(p.SessionCreate(settings=self._settings)))
            self.state = StreamState.STREAMING
            sender = self._owner.spawn(self._send_audio(ws), name="send")
            return await self._receive(ws)
        except ConnectionClosed as exc:
            return Failure(FailureKind.RESET, f"connection lost: {exc}")
        finally:
            if sender is not None:
                await cancel_and_wait([sender], self._clock.now() + self._opts.close_timeout)
            await self._close_socket(ws)
            self._budget.on_disconnected(self._clock.now())

    async def _close_socket(self, ws: ClientConnection) -> None:
        try:
            await ws.close()  # websockets bounds this by close_timeout, then aborts
        finally:
            ws.transport.abort()  # no-op once closed; hard release if close was cancelled
            self._ws = None
            self._mark_released()

    async def _send_audio(self, ws: ClientConnection) -> None:
        async for data in self._audio:
            await ws.send(data)
        # Input ended: everything queued has been sent.
        self.state = StreamState.FINISHING
        await ws.send(p.encode_client_message(p.SessionFinalize()))

    async def _receive(self, ws: ClientConnection) -> Failure | None:
        async for message in ws:
            if isinstance(message, bytes):
                self._garbage("binary frame from server")
                continue
            try:
                event = p.parse_server_event(message)
            except p.ProtocolViolation as exc:
                self._garbage(exc.message)
                continue
            self._budget.check_healthy(self._clock.now())
            failure = await self._handle(ws, event)
            if failure is not None:
                return failure
            if isinstance(event, p.SessionClosed):
                if self._input_ended:
                    return None  # the answer to our session.close: done
                # Unasked, while the caller still talks: the gateway is shutting down or
                # restarting. A lost connection, not the end of the stream's input.
                return Failure(FailureKind.RESET, "gateway ended the session while input was live")
        if self._input_ended:
            return None  # closed after our session.close: done
        return Failure(FailureKind.RESET, "server closed the connection without session.closed")

    async def _handle(self, ws: ClientConnection, event: p.ServerEvent) -> Failure | None:
        if isinstance(event, p.StartOfSpeech):
            await self._emit(SpeechEvent(SpeechEventType.START_OF_SPEECH))
        elif isinstance(event, p.InterimTranscript):
            await self._emit(SpeechEvent(SpeechEventType.INTERIM_TRANSCRIPT, event.text))
        elif isinstance(event, p.FinalTranscript):
            self.stats.finals += 1
            self._budget.on_progress()
            await self._emit(
                SpeechEvent(
                    SpeechEventType.FINAL_TRANSCRIPT, event.text, event.start_s, event.end_s
                )
            )
        elif isinstance(event, p.EndOfSpeech):
            await self._emit(SpeechEvent(SpeechEventType.END_OF_SPEECH))
        elif isinstance(event, p.SessionFinalized):
            if self._input_ended:
                await ws.send(p.encode_client_message(p.SessionClose()))
        elif isinstance(event, p.ErrorEvent):
            return self._server_error(event)
        return None

    def _server_error(self, event: p.ErrorEvent) -> Failure | None:
        try:
            code = p.ErrorCode(event.code)
        except ValueError:
            return Failure(
                FailureKind.PROTOCOL,
                f"error {event.code}: {event.message}",
                event.code,
                event.retryable,
            )
        if code in _FATAL_CODES:
            return Failure(
                _FATAL_CODES[code], f"{event.message} ({code.value})", code.value, retryable=False
            )
        if code in _RETRY_CODES:
            return Failure(_RETRY_CODES[code], f"{event.message} ({code.value})", code.value)
        # A rejected message of ours (2001-2006, 2009): a client bug, not the session's end.
        log.warning(
            "%s: gateway rejected a message: %s (%d)", self.label, event.message, event.code
        )
        return None

    async def _emit(self, event: SpeechEvent) -> None:
        if self._closed:
            return  # nobody reads after aclose; never block the close handshake
        await self._events.send(event)

    def _garbage(self, what: str) -> None:
        self.stats.garbage_frames += 1
        log.warning("%s: ignoring unparseable frame from gateway: %s", self.label, what)

    # -- closing --------------------------------------------------------------------------
    async def _aclose_impl(self) -> None:
        self.end_input()
        now = self._clock.now()
        deadline = self.close_deadline(now, self._opts.close_timeout)
        done, _ = await asyncio.wait({self._runner}, timeout=max(0.0, deadline - now))
        if not done:
            self._abort_impl()
        await self._owner.shutdown(max(deadline, self._clock.now()))

    def _abort_impl(self) -> None:
        self._input_ended = True
        self._audio.close()
        self._input_done.set()
        self._audio_or_end.set()
        for task in self._owner.live:
            task.cancel()
        if self._ws is not None:
            self._ws.transport.abort()
            self._ws = None
        self._events.close()
