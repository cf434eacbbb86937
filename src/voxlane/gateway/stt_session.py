"""One ``/v1/stt`` connection: its state machine, its engine worker and its one close.

What each client frame does is decided by the pure rules of
:mod:`voxlane.gateway.stt_rules` (states, transitions, decisions); this module carries
the decisions out.

Tasks: the websocket handler task reads the socket (the *reader*, see :meth:`run`); an
ACTIVE session owns one *worker* task that feeds the engine, in order, from a bounded queue
(engine calls run in a thread executor, one at a time per session); every close goes
through one *closing task* (:meth:`begin_close`), awaited by the handler before it returns.
Every wait has a deadline: sends (``send_timeout_s``), queue puts (``queue_timeout_s``),
the close (``close_timeout_s``), after which the transport is aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from voxlane.aio.tasks import cancel_and_wait, wait_pending
from voxlane.gateway import protocol as p
from voxlane.gateway import stt_rules as rules
from voxlane.gateway.connlog import ConnectionRecord
from voxlane.gateway.engines import ENGINE_SAMPLE_RATE, Recognizer, SttEngine
from voxlane.gateway.faults import GARBAGE_FRAMES, FaultPlan
from voxlane.gateway.logsafe import exception_summary
from voxlane.gateway.resample import Resampler
from voxlane.gateway.sending import SendOutcome, abort, close_bounded, send_bounded
from voxlane.gateway.stt_rules import State

__all__ = ["SessionLimits", "SessionSlots", "SttConnection"]

_log = logging.getLogger("voxlane.gateway")
_session_counter = itertools.count(1)
_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionLimits:
    """Per-connection limits, from GatewayConfig."""

    idle_timeout_s: float
    max_frame_bytes: int
    send_timeout_s: float
    close_timeout_s: float
    queue_frames: int
    queue_timeout_s: float
    create_timeout_s: float = 10.0


async def _cancel(task: asyncio.Task[Any], deadline: float) -> None:
    """Cancel ``task`` and wait for it until ``deadline``. A task still running then is
    abandoned (kept referenced by :mod:`voxlane.aio.tasks`) and logged with its stack; the
    caller must not await it again without a bound."""
    for stuck in await cancel_and_wait([task], deadline):
        stack = "".join(f"\n  {line}" for line in stuck.stack)
        _log.warning("abandoned task %s still running after cancel:%s", stuck.name, stack)
    if task.done() and not task.cancelled() and task.exception() is not None:
        # Retrieved here (so asyncio does not report it at garbage collection): the task
        # was being cancelled, its error changes nothing for the caller.
        _log.debug("task %s ended with %s", task.get_name(), exception_summary(task.exception()))


class SessionSlots(Protocol):
    """The server's session counter (max_sessions)."""

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


class _SerialRecognizer:
    """Serializes calls on one recognizer across executor threads (feed vs close)."""

    def __init__(self, recognizer: Recognizer, sample_rate: int) -> None:
        self._rec = recognizer
        self._resampler = Resampler(sample_rate, ENGINE_SAMPLE_RATE)
        self._lock = threading.Lock()
        self._closed = False

    def feed(self, pcm: bytes) -> list[p.ServerEvent]:
        with self._lock:
            if self._closed:
                return []
            out: list[p.ServerEvent] = []
            out.extend(self._rec.feed(self._resampler.process(pcm)))
            return out

    def finalize(self) -> list[p.ServerEvent]:
        with self._lock:
            if self._closed:
                return []
            tail = self._resampler.process(b"", last=True)
            events: list[p.ServerEvent] = list(self._rec.feed(tail)) if tail else []
            events.extend(self._rec.finalize())
            return events

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._rec.close()


_QueueItem = bytes | str
#: Most queued audio frames fed to the engine in one call.
_MAX_BATCH = 25


class SttConnection:
    """Serves one websocket connection on ``/v1/stt``. Create, then ``await run()``."""

    def __init__(
        self,
        ws: ServerConnection,
        record: ConnectionRecord,
        *,
        engine: SttEngine,
        executor: Executor,
        limits: SessionLimits,
        slots: SessionSlots,
        faults: FaultPlan,
        on_done: Callable[[SttConnection], None],
    ) -> None:
        self._ws = ws
        self._record = record
        self._engine = engine
        self._executor = executor
        self._limits = limits
        self._slots = slots
        self._faults = faults
        self._on_done = on_done
        self._loop = asyncio.get_running_loop()
        self._state = State.AWAITING_CREATE
        self._session_id: str | None = None
        self._has_slot = False
        self._recognizer: _SerialRecognizer | None = None
        self._queue: asyncio.Queue[_QueueItem] = asyncio.Queue(maxsize=limits.queue_frames)
        self._worker: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        # Before session.create the same idle budget applies from the handshake on.
        self._idle_deadline = self._loop.time() + limits.idle_timeout_s
        self._early_idle_deadline: float | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def record(self) -> ConnectionRecord:
        return self._record

    def _set_state(self, new: State) -> None:
        self._state = rules.check_transition(self._state, new)

    # ------------------------------------------------------------------ reader

    async def run(self) -> None:
        """Read the socket until the connection ends; return after the one close is done."""
        try:
            await self._read_loop()
        except Exception:
            _log.exception("conn %d: internal error", self._record.conn_id)
            self._close_with(rules.INTERNAL)
        finally:
            # The peer vanished or the loop ended without a close: still run the one close.
            self._close_with(rules.PEER_GONE)
            assert self._closing is not None
            deadline = self._loop.time() + self._limits.close_timeout_s + 1.0
            if await wait_pending({self._closing}, deadline):
                _log.warning("conn %d: close overran its budget", self._record.conn_id)
                self.abort()
                await _cancel(self._closing, self._loop.time() + 0.5)
            self._on_done(self)

    async def _read_loop(self) -> None:
        while self._state in (State.AWAITING_CREATE, State.ACTIVE):
            deadline = self._idle_deadline
            if self._early_idle_deadline is not None:
                deadline = min(deadline, self._early_idle_deadline)
            try:
                # Bounded: websockets documents recv() as cancellation-safe, and it does
                # not swallow CancelledError, so the timeout's cancel returns at once.
                async with asyncio.timeout_at(deadline):
                    message = await self._ws.recv()
            except TimeoutError:
                self._close_with(rules.IDLE)
                return
            except ConnectionClosed:
                return
            if self._state not in (State.AWAITING_CREATE, State.ACTIVE):
                return
            if isinstance(message, bytes):
                await self._on_audio(message)
            else:
                await self._on_text(message)

    async def _on_text(self, text: str) -> None:
        decision = rules.decide_text(
            self._state, text, max_frame_bytes=self._limits.max_frame_bytes
        )
        self._record.note_message(decision.label)
        await self._apply(decision)

    async def _apply(self, decision: rules.Decision) -> None:
        """Carry out a decision of the rules, in the documented order."""
        if decision.reply is not None:
            self._record.note_error(decision.reply.code)
            await self._send(decision.reply)
        if decision.create is not None:
            await self._on_create(decision.create)
        if decision.restart_idle:
            self._idle_deadline = self._loop.time() + self._limits.idle_timeout_s
        if decision.enqueue is not None:
            await self._enqueue(decision.enqueue)
        if decision.close is not None:
            self._close_with(decision.close)

    async def _on_create(self, settings: p.SessionSettings) -> None:
        if not self._slots.try_acquire():
            self._close_with(rules.BUSY)
            return
        self._has_slot = True
        starter = asyncio.ensure_future(self._in_executor(self._engine.new_recognizer, settings))
        # Bounded: a saturated or stuck engine must not hold the reader forever.
        if await wait_pending({starter}, self._loop.time() + self._limits.create_timeout_s):
            # Not cancelled: the engine call goes on in its thread regardless, and the
            # recognizer it returns holds pooled resources (a decoder, a worker's session
            # count). It is released when it arrives, instead of being lost with the future.
            starter.add_done_callback(self._release_late_recognizer)
            _log.error("conn %d: engine did not start a session in time", self._record.conn_id)
            self._close_with(rules.ENGINE_FAILED)
            return
        try:
            rec = starter.result()
        except p.ProtocolViolation as exc:
            self._slots.release()
            self._has_slot = False
            await self._send_error(exc.code, exc.message)
            return
        except Exception as exc:  # third-party engine errors: translated here
            # Its text may quote the phrases: the type only (voxlane.gateway.logsafe).
            _log.error(
                "conn %d: engine failed to start: %s",
                self._record.conn_id,
                exception_summary(exc),
            )
            self._close_with(rules.ENGINE_FAILED)
            return
        if self._state is not State.AWAITING_CREATE:  # closed while the engine started
            await self._in_executor(rec.close)
            return
        self._recognizer = _SerialRecognizer(rec, settings.sample_rate)
        self._session_id = f"stt_{next(_session_counter):06d}"
        self._record.session_ids.append(self._session_id)
        self._set_state(State.ACTIVE)
        now = self._loop.time()
        self._idle_deadline = now + self._limits.idle_timeout_s
        if self._faults.early_idle_s is not None:
            self._early_idle_deadline = now + self._faults.early_idle_s
        self._worker = asyncio.create_task(
            self._work(self._recognizer), name=f"voxlane-gateway-worker-{self._session_id}"
        )
        _log.info(
            "conn %d: session %s created (rate=%d, engine=%s)",
            self._record.conn_id,
            self._session_id,
            settings.sample_rate,
            self._engine.name,
        )
        await self._send(p.SessionCreated(self._session_id))
        if self._faults.send_garbage:
            for frame in GARBAGE_FRAMES:
                await self._send_raw(frame)

    def _release_late_recognizer(self, starter: asyncio.Future[Recognizer]) -> None:
        """Close a recognizer that the engine produced after the session gave up on it."""
        if starter.cancelled() or starter.exception() is not None:
            return
        rec = starter.result()
        try:
            closer = self._executor.submit(rec.close)
        except RuntimeError:  # executor already shut down (server closed past us)
            _log.warning("conn %d: late recognizer left unreleased", self._record.conn_id)
            return
        conn_id = self._record.conn_id

        def report(done: Future[None]) -> None:
            if done.exception() is not None:
                _log.warning("conn %d: late recognizer close failed", conn_id)

        closer.add_done_callback(report)

    async def _on_audio(self, data: bytes) -> None:
        self._record.audio_frames += 1
        self._record.audio_bytes += len(data)
        drop_after = self._faults.drop_after_frames
        if drop_after is not None and self._record.audio_frames >= drop_after:
            _log.info("conn %d: fault: dropping the connection", self._record.conn_id)
            self.abort()
            self.begin_close("fault_drop", None)
            return
        await self._apply(
            rules.decide_audio(self._state, data, max_frame_bytes=self._limits.max_frame_bytes)
        )

    async def _enqueue(self, item: _QueueItem) -> None:
        """Put into the bounded engine queue; waiting is bounded by queue_timeout_s."""
        if self._queue.full():
            # Backpressure: while we wait, the socket is not read, so TCP pushes back on
            # the client. Past the deadline the engine is hopelessly behind real time.
            putter = asyncio.ensure_future(self._queue.put(item))
            deadline = self._loop.time() + self._limits.queue_timeout_s
            if await wait_pending({putter}, deadline):
                await _cancel(putter, deadline + 1.0)
                self._close_with(rules.OVERLOADED)
            return
        self._queue.put_nowait(item)

    # ------------------------------------------------------------------ worker

    async def _work(self, rec: _SerialRecognizer) -> None:
        """Feed the engine in order; send its events. Ends on the close sentinel."""
        try:
            command: str | None = None
            while True:
                item = await self._queue.get()
                if isinstance(item, bytes):
                    # Under load, frames queue up: feed what is queued in one call (up to
                    # _MAX_BATCH frames) to save per-call overhead; idle, a batch is one
                    # frame, so latency is unchanged.
                    batch = [item]
                    while len(batch) < _MAX_BATCH and not self._queue.empty():
                        nxt = self._queue.get_nowait()
                        if isinstance(nxt, bytes):
                            batch.append(nxt)
                        else:
                            command = nxt
                            break
                    for evt in await self._in_executor(rec.feed, b"".join(batch)):
                        await self._send(evt)
                else:
                    command = item
                if command == rules.DRAIN_AND_CLOSE:
                    return
                if command == rules.FINALIZE:
                    events = await self._in_executor(rec.finalize)
                    for evt in events:
                        await self._send(evt)
                    await self._send(p.SessionFinalized())
                command = None
        except Exception as exc:  # third-party engine errors: translated here
            _log.error("conn %d: engine error: %s", self._record.conn_id, exception_summary(exc))
            # Not awaited here: the closing task cancels and awaits this worker.
            self._close_with(rules.ENGINE_FAILED)

    async def _in_executor(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        def call() -> _T:
            return fn(*args, **kwargs)

        return await self._loop.run_in_executor(self._executor, call)

    # ------------------------------------------------------------------ sending

    async def _send(self, evt: p.ServerEvent, *, deadline: float | None = None) -> None:
        await self._send_raw(p.encode_server_event(evt), deadline=deadline)

    async def _send_error(self, code: p.ErrorCode, message: str | None = None) -> None:
        self._record.note_error(int(code))
        await self._send(p.error_event(code, message))

    async def _send_raw(self, text: str, *, deadline: float | None = None) -> None:
        """Send one text frame within send_timeout_s (or by ``deadline`` if sooner). A
        client that does not read in time is a slow consumer: the connection's close
        begins with error 2014 / close 1008 (never raises)."""
        if self._faults.response_delay_s > 0:
            await asyncio.sleep(self._faults.response_delay_s)
        limit = self._loop.time() + self._limits.send_timeout_s
        if deadline is not None:
            limit = min(limit, deadline)
        outcome = await send_bounded(self._ws, text, limit)
        if outcome is SendOutcome.TIMED_OUT:
            if self._closing is not None:
                self.abort()  # the close itself could not write: nothing more to say
                return
            _log.info(
                "conn %d: client too slow: a frame waited %.1fs to be written",
                self._record.conn_id,
                self._limits.send_timeout_s,
            )
            self._close_with(rules.SLOW_CONSUMER)

    def abort(self) -> None:
        """Close the TCP connection now, without a closing handshake."""
        abort(self._ws)

    # ------------------------------------------------------------------ closing

    def begin_close(
        self, reason: str, error: p.ErrorCode | None, message: str | None = None
    ) -> None:
        """Start the one close of this connection (idempotent; later reasons are ignored).

        ``error`` None: a clean end, the client gets ``session.closed`` (unless the peer
        is gone). Otherwise the client gets that error event and the close code documented
        for it. The handler awaits the close; nobody else has to.
        """
        if self._closing is not None:
            return
        if self._state in (State.AWAITING_CREATE, State.ACTIVE):
            self._set_state(State.CLOSING)
        self._record.close_reason = reason
        self._closing = asyncio.create_task(
            self._close(reason, error, message),
            name=f"voxlane-gateway-close-{self._record.conn_id}",
        )

    def request_shutdown(self) -> None:
        """Server shutdown: end this connection with ``session.closed`` and close 1000."""
        self._close_with(rules.SHUTDOWN)

    def _close_with(self, order: rules.CloseOrder) -> None:
        self.begin_close(order.reason, order.error, order.message)

    async def _close(self, reason: str, error: p.ErrorCode | None, message: str | None) -> None:
        deadline = self._loop.time() + self._limits.close_timeout_s
        worker = self._worker
        try:
            if worker is not None and worker is not asyncio.current_task():
                if reason == "client_close":
                    # Let the worker drain the queue up to the close sentinel, but only
                    # for a share of the budget: the handshake needs the rest.
                    share = self._loop.time() + self._limits.close_timeout_s / 2
                    await wait_pending({worker}, share)
                await _cancel(worker, deadline)
            # The session is over once its worker is: free the slot before telling the
            # client, so "session.closed received" implies "a new session fits".
            self._release_slot()
            if reason not in ("peer_gone", "fault_drop"):
                if error is None:
                    await self._send(p.SessionClosed(), deadline=deadline)
                else:
                    self._record.note_error(int(error))
                    await self._send(p.error_event(error, message), deadline=deadline)
                code, close_reason = p.close_frame(error)
                self._record.close_code = code
                await close_bounded(self._ws, code, close_reason, deadline)
            else:
                self.abort()
        finally:
            await self._release(deadline)
            self._set_state(State.CLOSED)
            self._record.closed_at = self._loop.time()
            _log.info(
                "conn %d: closed (session=%s, reason=%s, frames=%d)",
                self._record.conn_id,
                self._session_id,
                reason,
                self._record.audio_frames,
            )

    def _release_slot(self) -> None:
        if self._has_slot:
            self._has_slot = False
            self._slots.release()

    async def _release(self, deadline: float) -> None:
        self._release_slot()
        rec, self._recognizer = self._recognizer, None
        while not self._queue.empty():
            self._queue.get_nowait()
        if rec is not None:
            # The recognizer may still be busy in a thread (a slow decode): close it in
            # the executor behind its lock, bounded; past the deadline it is left to the
            # thread, which releases it when its call returns.
            try:
                closer = asyncio.ensure_future(
                    self._loop.run_in_executor(self._executor, rec.close)
                )
            except RuntimeError:  # executor already shut down (server closed past us)
                _log.warning("conn %d: recognizer left unreleased", self._record.conn_id)
                return
            with contextlib.suppress(Exception):
                if await wait_pending({closer}, max(deadline, self._loop.time() + 0.5)):
                    _log.warning("conn %d: recognizer close still running", self._record.conn_id)
                elif closer.exception() is not None:
                    _log.warning("conn %d: recognizer close failed", self._record.conn_id)
