"""One ``/v1/tts`` connection: synthesis requests in order, cancel at once, bounded close.

A reader task parses client frames; a worker task synthesizes queued requests in the
executor (piper yields per sentence), resamples to the requested rate and sends 100 ms
binary frames. Every send goes through one lock and checks the *epoch* right before
writing: ``cancel`` bumps the epoch, so no frame of a cancelled request is sent after the
``synthesis.cancelled`` event. Same interface as the STT connection for the server:
``run()``, ``request_shutdown()``, ``abort()``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from voxlane.aio.channel import BoundedChannel
from voxlane.aio.tasks import TaskOwner
from voxlane.errors import ClosedError
from voxlane.gateway import protocol as p
from voxlane.gateway import tts_protocol as t
from voxlane.gateway.connlog import ConnectionRecord
from voxlane.gateway.tts_engines import shared_tts_engine
from voxlane.media import AudioFrame, split_frames
from voxlane.resample import StreamResampler

log = logging.getLogger("voxlane.gateway.tts")
T = TypeVar("T")
MAX_QUEUED = 32
CHUNK_S = 0.1


class TtsConnection:
    def __init__(
        self,
        conn: ServerConnection,
        record: ConnectionRecord,
        *,
        executor: Executor,
        send_timeout_s: float,
        close_timeout_s: float,
        on_done: Callable[[TtsConnection], None],
    ) -> None:
        self._conn = conn
        self.record = record
        self._executor = executor
        self._send_timeout = send_timeout_s
        self._close_timeout = close_timeout_s
        self._on_done = on_done
        self._jobs: BoundedChannel[t.Synthesize] = BoundedChannel(MAX_QUEUED)
        self._epoch = 0
        self._current: str | None = None
        self._ids = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self._owner = TaskOwner(f"tts-conn-{record.conn_id}")
        self._closing = False

    async def run(self) -> None:
        worker = self._owner.spawn(self._work(), name="synthesize")
        try:
            async for message in self._conn:
                if isinstance(message, bytes):
                    await self._error(p.ErrorCode.INVALID_MESSAGE, "binary frames are not accepted")
                    continue
                if not await self._on_text(message):
                    break
        except ConnectionClosed:
            self.record.close_reason = self.record.close_reason or "peer_gone"
        finally:
            worker.cancel()
            loop = asyncio.get_running_loop()
            await self._owner.shutdown(loop.time() + self._close_timeout)
            self.record.closed_at = loop.time()
            self._on_done(self)

    async def _on_text(self, text: str) -> bool:
        """Handle one client frame; False ends the connection."""
        try:
            msg = t.parse_tts_client_text(text)
        except p.ProtocolViolation as exc:
            self.record.messages.append("invalid")
            await self._error(exc.code, exc.message)
            return True
        self.record.messages.append(msg.type)
        if isinstance(msg, t.Synthesize):
            job = (
                msg
                if msg.id is not None
                else t.Synthesize(
                    text=msg.text,
                    voice=msg.voice,
                    sample_rate=msg.sample_rate,
                    id=str(next(self._ids)),
                )
            )
            if not self._jobs.send_nowait(job):
                await self._error(p.ErrorCode.OVERLOADED, f"more than {MAX_QUEUED} queued requests")
            return True
        if isinstance(msg, t.Cancel):
            await self._cancel()
            return True
        await self._close("client_close")
        return False

    async def _cancel(self) -> None:
        self._epoch += 1  # from here on, no frame of an older request is sent
        dropped = self._jobs.clear()
        cancelled = self._current or ""
        log.debug(
            "conn %d: cancel (current=%s, dropped %d)", self.record.conn_id, cancelled, dropped
        )
        await self._send_text(t.encode_tts_server_event(t.SynthesisCancelled(cancelled)))

    async def _work(self) -> None:
        async for job in self._jobs:
            epoch = self._epoch
            assert job.id is not None
            self._current = job.id
            try:
                await self._synthesize(job, epoch)
            except Exception as exc:  # an engine failure ends this request, not the session
                log.warning("conn %d: synthesis failed: %r", self.record.conn_id, exc)
                await self._error(p.ErrorCode.ENGINE_ERROR, f"synthesis failed: {exc}")
            finally:
                self._current = None

    async def _synthesize(self, job: t.Synthesize, epoch: int) -> None:
        assert job.id is not None
        engine = shared_tts_engine(job.voice)
        await self._in_executor(engine.load)
        if epoch != self._epoch:
            return
        await self._send_text(
            t.encode_tts_server_event(t.SynthesisStarted(job.id, job.sample_rate)), epoch
        )
        resampler = StreamResampler(engine.sample_rate, job.sample_rate)
        chunks = engine.synthesize(job.text)
        while epoch == self._epoch:
            chunk = await self._in_executor(next, chunks, None)
            last = chunk is None
            frame = resampler.push(AudioFrame(chunk or b"", engine.sample_rate), last=last)
            for piece in split_frames(frame, CHUNK_S) if frame.data else []:
                await self._send_bytes(piece.data, epoch)
            if last:
                await self._send_text(t.encode_tts_server_event(t.SynthesisDone(job.id)), epoch)
                return

    async def _in_executor(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- sending (one lock; the epoch check happens under it) ----------------------------
    async def _send_bytes(self, data: bytes, epoch: int) -> None:
        async with self._send_lock:
            if epoch == self._epoch:
                await asyncio.wait_for(self._conn.send(data), self._send_timeout)

    async def _send_text(self, text: str, epoch: int | None = None) -> None:
        async with self._send_lock:
            if epoch is None or epoch == self._epoch:
                await asyncio.wait_for(self._conn.send(text), self._send_timeout)

    async def _error(self, code: p.ErrorCode, message: str) -> None:
        self.record.errors_sent.append(int(code))
        await self._send_text(p.encode_server_event(p.error_event(code, message)))

    # -- closing ----------------------------------------------------------------------------
    async def _close(self, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._epoch += 1
        self._jobs.close()
        self.record.close_reason = reason
        try:
            await self._send_text(p.encode_server_event(p.SessionClosed()))
            await self._conn.close(1000)  # bounded by the server's close_timeout
            self.record.close_code = 1000
        except (ConnectionClosed, TimeoutError):
            self.abort()

    def request_shutdown(self) -> None:
        """Server shutdown: session.closed, then close 1000 (the reader then ends)."""
        try:
            self._owner.spawn(self._close("server_shutdown"), name="shutdown")
        except ClosedError:
            pass  # the connection is already ending

    def abort(self) -> None:
        self._epoch += 1
        self._conn.transport.abort()
