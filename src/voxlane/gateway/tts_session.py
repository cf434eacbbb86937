"""One ``/v1/tts`` connection: synthesis requests in order, cancel at once, one bounded close.

Tasks (all owned by the connection's :class:`~voxlane.aio.tasks.TaskOwner`): the handler
task reads the socket (:meth:`TtsConnection.run`); a *worker* synthesizes queued requests
in the executor (piper yields per sentence), resamples to the requested rate and sends
100 ms binary frames; every end goes through one *closing task* (:meth:`_begin_close`).

Sending: every frame goes through :meth:`_send`, under one lock, checking the *epoch*
right before writing: ``cancel`` bumps the epoch, so no frame of a cancelled request is
sent after the ``synthesis.cancelled`` event. A send never raises: one that cannot be
written within ``send_timeout_s`` means the client is not reading, and begins the close
with error 2014 and close 1008 ("client too slow"); one on a connection the client
already left begins a quiet ``peer_gone`` close (logged at INFO, no traceback). An engine
failure ends only its request (error 2011, non-fatal); the worker goes on.

Idle: with no request queued or being spoken, a connection that sends no ``synthesize``
for ``idle_timeout_s`` gets error 2007 and close 1000, as on ``/v1/stt``.

Same interface as the STT connection for the server: ``run()``, ``request_shutdown()``,
``abort()``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from voxlane.aio.channel import BoundedChannel
from voxlane.aio.tasks import TaskOwner, cancel_and_wait, wait_pending
from voxlane.gateway import protocol as p
from voxlane.gateway import stt_rules as rules
from voxlane.gateway import tts_protocol as t
from voxlane.gateway.connlog import ConnectionRecord
from voxlane.gateway.logsafe import exception_summary
from voxlane.gateway.sending import SendOutcome, abort, close_bounded, send_bounded
from voxlane.gateway.tts_engines import TtsEngine, shared_tts_engine
from voxlane.media import AudioFrame, split_frames
from voxlane.resample import StreamResampler

__all__ = ["TtsConnection", "TtsLimits"]

log = logging.getLogger("voxlane.gateway.tts")
T = TypeVar("T")
CHUNK_S = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class TtsLimits:
    """Per-connection limits of ``/v1/tts``, from GatewayConfig."""

    idle_timeout_s: float
    send_timeout_s: float
    close_timeout_s: float
    #: Requests that may wait behind the one being spoken (more: error 2012, non-fatal).
    max_queued: int = 32


class _EngineFailed(Exception):
    """An engine call raised; ``__cause__`` is the engine's own exception."""


class TtsConnection:
    """Serves one websocket connection on ``/v1/tts``. Create, then ``await run()``."""

    def __init__(
        self,
        conn: ServerConnection,
        record: ConnectionRecord,
        *,
        executor: Executor,
        limits: TtsLimits,
        on_done: Callable[[TtsConnection], None],
    ) -> None:
        self._conn = conn
        self.record = record
        self._executor = executor
        self._limits = limits
        self._on_done = on_done
        self._loop = asyncio.get_running_loop()
        self._jobs: BoundedChannel[t.Synthesize] = BoundedChannel(limits.max_queued)
        self._epoch = 0
        self._current: str | None = None
        self._ids = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self._owner = TaskOwner(f"tts-conn-{record.conn_id}")
        self._worker: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._requests = 0
        # From the handshake on, as on /v1/stt.
        self._idle_deadline = self._loop.time() + limits.idle_timeout_s

    # ------------------------------------------------------------------ reader

    async def run(self) -> None:
        """Read the socket until the connection ends; return once its one close is done."""
        self._worker = self._owner.spawn(self._work(), name="synthesize")
        try:
            await self._read_loop()
        except Exception:  # a bug of ours: logged with its stack, the client gets 2013
            log.exception("conn %d: internal error", self.record.conn_id)
            self._begin_close(rules.INTERNAL)
        finally:
            self._begin_close(rules.PEER_GONE)  # no-op when a close already began
            if self._closing is not None:
                deadline = self._loop.time() + self._limits.close_timeout_s + 1.0
                if await wait_pending({self._closing}, deadline):
                    log.warning("conn %d: close overran its budget", self.record.conn_id)
                    self.abort()
            for stuck in await self._owner.shutdown(self._loop.time() + 0.5):
                log.warning("conn %d: abandoned task %s", self.record.conn_id, stuck.name)
            self.record.closed_at = self._loop.time()
            self._on_done(self)

    def _busy(self) -> bool:
        return self._current is not None or len(self._jobs) > 0

    async def _read_loop(self) -> None:
        while self._closing is None:
            # While a request is queued or spoken the connection is not idle: wake up
            # once per idle period to look again.
            now = self._loop.time()
            deadline = now + self._limits.idle_timeout_s if self._busy() else self._idle_deadline
            try:
                # Bounded: websockets' recv() is cancellation-safe and returns at once.
                async with asyncio.timeout_at(deadline):
                    message = await self._conn.recv()
            except TimeoutError:
                if not self._busy() and self._loop.time() >= self._idle_deadline:
                    self._begin_close(rules.IDLE)
                continue
            except ConnectionClosed:
                return
            if self._closing is not None:
                return
            if isinstance(message, bytes):
                self.record.note_message("binary")
                await self._reply_error(
                    p.ErrorCode.INVALID_MESSAGE, "binary frames are not accepted"
                )
            else:
                await self._on_text(message)

    async def _on_text(self, text: str) -> None:
        try:
            msg = t.parse_tts_client_text(text)
        except p.ProtocolViolation as exc:
            self.record.note_message("invalid")
            await self._reply_error(exc.code, exc.message)
            return
        self.record.note_message(msg.type)
        if isinstance(msg, t.Synthesize):
            self._requests += 1
            job = msg
            if msg.id is None:
                job = t.Synthesize(
                    text=msg.text,
                    voice=msg.voice,
                    sample_rate=msg.sample_rate,
                    id=str(next(self._ids)),
                )
            if not self._jobs.send_nowait(job):
                limit = self._limits.max_queued
                await self._reply_error(
                    p.ErrorCode.OVERLOADED, f"more than {limit} queued requests"
                )
                return
            self._idle_deadline = self._loop.time() + self._limits.idle_timeout_s
        elif isinstance(msg, t.Cancel):
            await self._cancel()
        else:
            self._begin_close(rules.CLIENT_CLOSE)

    async def _cancel(self) -> None:
        self._epoch += 1  # from here on, no frame of an older request is sent
        dropped = self._jobs.clear()
        cancelled = self._current or ""
        log.debug(
            "conn %d: cancel (current=%s, dropped %d)",
            self.record.conn_id,
            p.shorten(cancelled),
            dropped,
        )
        await self._send(t.encode_tts_server_event(t.SynthesisCancelled(cancelled)))

    # ------------------------------------------------------------------ worker

    async def _work(self) -> None:
        async for job in self._jobs:
            assert job.id is not None
            self._current = job.id
            try:
                await self._synthesize(job, self._epoch)
            except _EngineFailed as exc:  # ends this request, not the connection
                name = type(exc.__cause__).__name__
                log.warning(
                    "conn %d: synthesis %s failed: %s",
                    self.record.conn_id,
                    p.shorten(job.id),
                    exception_summary(exc.__cause__),
                )
                await self._reply_error(p.ErrorCode.ENGINE_ERROR, f"synthesis failed: {name}")
            finally:
                self._current = None
                self._idle_deadline = self._loop.time() + self._limits.idle_timeout_s

    async def _synthesize(self, job: t.Synthesize, epoch: int) -> None:
        """Speak one request; returns early when it is cancelled or a send fails."""
        assert job.id is not None
        engine = await self._engine_call(shared_tts_engine, job.voice)
        await self._engine_call(engine.load)
        started = t.SynthesisStarted(job.id, job.sample_rate)
        if not await self._send(t.encode_tts_server_event(started), epoch):
            return
        resampler = StreamResampler(engine.sample_rate, job.sample_rate)
        chunks = await self._engine_call(_start, engine, job.text)
        while epoch == self._epoch:
            chunk = await self._engine_call(next, chunks, None)
            last = chunk is None
            frame = resampler.push(AudioFrame(chunk or b"", engine.sample_rate), last=last)
            for piece in split_frames(frame, CHUNK_S) if frame.data else []:
                if not await self._send(piece.data, epoch):
                    return
            if last:
                await self._send(t.encode_tts_server_event(t.SynthesisDone(job.id)), epoch)
                return

    async def _engine_call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run an engine call in the executor; its failure becomes :class:`_EngineFailed`."""
        try:
            return await self._loop.run_in_executor(self._executor, fn, *args)
        except Exception as exc:
            raise _EngineFailed() from exc

    # ------------------------------------------------------------------ sending

    async def _send(self, data: str | bytes, epoch: int | None = None) -> bool:
        """Send one frame unless stale (``epoch`` passed and a cancel came since) or the
        connection is closing. Returns whether it was sent; a send that times out or
        finds the peer gone begins the close (never raises)."""
        async with self._send_lock:
            if self._closing is not None or (epoch is not None and epoch != self._epoch):
                return False
            deadline = self._loop.time() + self._limits.send_timeout_s
            outcome = await send_bounded(self._conn, data, deadline)
        if outcome is SendOutcome.TIMED_OUT:
            log.info(
                "conn %d: client too slow: a frame waited %.1fs to be written",
                self.record.conn_id,
                self._limits.send_timeout_s,
            )
            self._begin_close(rules.SLOW_CONSUMER)
        elif outcome is SendOutcome.CLOSED:
            self._begin_close(rules.PEER_GONE)
        return outcome is SendOutcome.SENT

    async def _reply_error(self, code: p.ErrorCode, message: str) -> None:
        """A non-fatal error event (the connection goes on)."""
        self.record.note_error(int(code))
        await self._send(p.encode_server_event(p.error_event(code, message)))

    # ------------------------------------------------------------------ closing

    def _begin_close(self, order: rules.CloseOrder) -> None:
        """Start the one close (idempotent: later orders are ignored). Stops speaking at
        once: the current request's frames stop, queued requests are dropped."""
        if self._closing is not None or self._owner.closed:
            return
        self._epoch += 1
        self._jobs.clear()
        self._jobs.close()
        self.record.close_reason = order.reason
        self._closing = self._owner.spawn(self._close(order), name="close")

    async def _close(self, order: rules.CloseOrder) -> None:
        deadline = self._loop.time() + self._limits.close_timeout_s
        worker = self._worker
        if worker is not None:
            for stuck in await cancel_and_wait([worker], deadline):
                log.warning("conn %d: abandoned task %s", self.record.conn_id, stuck.name)
        if order is rules.PEER_GONE:
            abort(self._conn)
        else:
            if order.error is None:
                event: p.ServerEvent = p.SessionClosed()
            else:
                self.record.note_error(int(order.error))
                event = p.error_event(order.error, order.message)
            code, reason = p.close_frame(order.error)
            self.record.close_code = code
            # A client that does not read gets the last event and the close frame if it
            # reads again before the deadline; past it, TCP is dropped.
            sent = await send_bounded(self._conn, p.encode_server_event(event), deadline)
            if sent is SendOutcome.TIMED_OUT:
                abort(self._conn)
            else:
                await close_bounded(self._conn, code, reason, deadline)
        log.info(
            "conn %d: closed (reason=%s, requests=%d)",
            self.record.conn_id,
            order.reason,
            self._requests,
        )

    def request_shutdown(self) -> None:
        """Server shutdown: ``session.closed``, then close 1000 (the reader then ends)."""
        self._begin_close(rules.SHUTDOWN)

    def abort(self) -> None:
        """Drop the TCP connection now (no more frames of any request)."""
        self._epoch += 1
        abort(self._conn)


def _start(engine: TtsEngine, text: str) -> Iterator[bytes]:
    return iter(engine.synthesize(text))
