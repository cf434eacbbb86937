"""GatewayTTS: streaming text-to-speech from a voxlane gateway (``/v1/tts``).

Text pushed in pieces (LLM deltas) is cut into sentences; each sentence is sent as one
``synthesize`` request as soon as it is complete, so audio starts after the first sentence,
not the whole reply. One stream = one websocket, registered in the ledger while open.
``aclose()`` cancels what is still being synthesized, sends ``session.close`` and waits for
``session.closed`` until its deadline; cancelled or failing, it aborts the socket and
releases. No reconnects: a speech's TTS stream is short; a failure ends the stream with a
ProviderError and the session reports it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import ClassVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from voxlane.aio.channel import BoundedChannel
from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.tasks import TaskOwner, cancel_and_wait
from voxlane.core.retry import Failure
from voxlane.errors import (
    ChannelClosedError,
    ProviderConnectionError,
    ProviderError,
    ProviderProtocolError,
)
from voxlane.gateway import protocol as p
from voxlane.gateway import tts_protocol as t
from voxlane.media import AudioFrame
from voxlane.providers.gateway_ws import failure_error, open_gateway_socket
from voxlane.providers.tts import TTS, TTSStream

log = logging.getLogger("voxlane.providers.gateway_tts")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_MAX_PENDING_CHARS = 240  # cut long clause-less text at a space rather than wait for a period


def split_sentences(buffer: str, *, final: bool) -> tuple[list[str], str]:
    """Complete sentences in ``buffer`` and the remainder (all of it when ``final``)."""
    parts = _SENTENCE_END.split(buffer)
    done, rest = [s.strip() for s in parts[:-1] if s.strip()], parts[-1]
    if len(rest) > _MAX_PENDING_CHARS and " " in rest:
        cut = rest.rfind(" ", 0, _MAX_PENDING_CHARS)
        done.append(rest[:cut].strip())
        rest = rest[cut + 1 :]
    if final and rest.strip():
        done.append(rest.strip())
        rest = ""
    return done, rest


class GatewayTTS(TTS):
    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        voice: str = "joe",
        sample_rate: int = 16000,
        connect_timeout: float = 5.0,
        close_timeout: float = 2.0,
        label: str = "gateway-tts",
        clock: Clock = DEFAULT_CLOCK,
    ) -> None:
        if voice not in t.VOICES:
            raise ValueError(f"unknown voice {voice!r}; known: {t.VOICES}")
        self.url, self.api_key, self.voice = url, api_key, voice
        self.sample_rate = sample_rate
        self.connect_timeout, self.close_timeout = connect_timeout, close_timeout
        self.label = label
        self._clock = clock

    def stream(self) -> GatewayTTSStream:
        return GatewayTTSStream(self)


class _End:
    pass


class GatewayTTSStream(TTSStream):
    kind: ClassVar[str] = "tts"

    def __init__(self, owner: GatewayTTS) -> None:
        super().__init__(label=owner.label)
        self._cfg = owner
        self._clock = owner._clock
        self._pending = ""
        self._requests: BoundedChannel[str] = BoundedChannel(256)
        self._frames: BoundedChannel[AudioFrame | _End | ProviderError] = BoundedChannel(600)
        self._ws: ClientConnection | None = None
        self._sent = 0
        self._done = 0
        self._input_ended = False
        self.chars = 0
        self._owner = TaskOwner(f"{owner.label}-stream", clock=owner._clock)
        self._runner = self._owner.spawn(self._run(), name="connection")

    # -- TTSStream ----------------------------------------------------------------------------
    def push_text(self, text: str) -> None:
        if self._input_ended or self._closed:
            return
        self._pending += text
        sentences, self._pending = split_sentences(self._pending, final=False)
        self._queue(sentences)

    def end_input(self) -> None:
        if self._input_ended:
            return
        sentences, self._pending = split_sentences(self._pending, final=True)
        self._queue(sentences)
        self._input_ended = True
        self._requests.close()

    def _queue(self, sentences: list[str]) -> None:
        for s in sentences:
            self.chars += len(s)
            if not self._requests.send_nowait(s):
                raise ProviderError("too many sentences queued", provider=self.label)

    async def __anext__(self) -> AudioFrame:
        try:
            item = await self._frames.receive()
        except ChannelClosedError:
            raise StopAsyncIteration from None
        if isinstance(item, _End):
            raise StopAsyncIteration
        if isinstance(item, ProviderError):
            raise item
        return item

    # -- connection -----------------------------------------------------------------------------
    async def _run(self) -> None:
        outcome: _End | ProviderError = _End()
        ws = await open_gateway_socket(
            self._cfg.url,
            self._cfg.api_key,
            connect_timeout=self._cfg.connect_timeout,
            close_timeout=self._cfg.close_timeout,
        )
        if isinstance(ws, Failure):
            if not self._frames.closed:  # closed: aclose() came first, nobody reads it
                self._frames.send_nowait(failure_error(ws, self.label))
            return
        self._ws = ws
        self._mark_open()
        sender = self._owner.spawn(self._send_requests(ws), name="send")
        try:
            await self._receive(ws)
        except ConnectionClosed as exc:
            outcome = ProviderConnectionError(f"connection lost: {exc}", provider=self.label)
        except ProviderError as exc:
            outcome = exc
        except ChannelClosedError:
            pass  # the reader closed the stream (aclose): nobody wants more audio
        finally:
            await cancel_and_wait([sender], self._clock.now() + self._cfg.close_timeout)
            try:
                await ws.close()  # bounded by close_timeout inside websockets
            finally:
                ws.transport.abort()
                self._ws = None
                self._mark_released()
            if not self._frames.closed:
                self._frames.send_nowait(outcome)

    async def _send_requests(self, ws: ClientConnection) -> None:
        async for sentence in self._requests:
            self._sent += 1
            msg = t.Synthesize(
                text=sentence,
                voice=self._cfg.voice,
                sample_rate=self._cfg.sample_rate,
                id=str(self._sent),
            )
            await ws.send(t.encode_tts_client_message(msg))
        if self._sent == self._done:
            await ws.send(t.encode_tts_client_message(p.SessionClose()))

    async def _receive(self, ws: ClientConnection) -> None:
        async for message in ws:
            if isinstance(message, bytes):
                if len(message) % 2:
                    raise ProviderProtocolError("odd-length audio frame", provider=self.label)
                await self._frames.send(AudioFrame(message, self._cfg.sample_rate))
                continue
            try:
                event = t.parse_tts_server_event(message)
            except p.ProtocolViolation as exc:
                log.warning("%s: ignoring unparseable frame: %s", self.label, exc.message)
                continue
            if isinstance(event, t.SynthesisDone):
                self._done += 1
                if (
                    self._input_ended
                    and self._requests.closed
                    and not len(self._requests)
                    and self._done == self._sent
                ):
                    await ws.send(t.encode_tts_client_message(p.SessionClose()))
            elif isinstance(event, p.SessionClosed):
                return
            elif isinstance(event, p.ErrorEvent):
                raise ProviderError(
                    f"gateway error {event.code}: {event.message}",
                    provider=self.label,
                    code=event.code,
                    retryable=event.retryable,
                )
        if not self._closed:
            raise ProviderConnectionError("gateway closed the stream early", provider=self.label)

    # -- closing ----------------------------------------------------------------------------
    async def _aclose_impl(self) -> None:
        deadline = self.close_deadline(self._clock.now(), self._cfg.close_timeout)
        ws = self._ws
        self._input_ended = True
        self._requests.close()
        self._frames.close()
        if ws is not None and not self._runner.done():
            try:
                await ws.send(t.encode_tts_client_message(t.Cancel()))
                await ws.send(t.encode_tts_client_message(p.SessionClose()))
            except ConnectionClosed:
                pass
        await asyncio.wait({self._runner}, timeout=max(0.0, deadline - self._clock.now()))
        if not self._runner.done():
            self._abort_impl()
        await self._owner.shutdown(max(deadline, self._clock.now()))

    def _abort_impl(self) -> None:
        self._requests.close()
        self._frames.close()
        for task in self._owner.live:
            task.cancel()
        if self._ws is not None:
            self._ws.transport.abort()
            self._ws = None
