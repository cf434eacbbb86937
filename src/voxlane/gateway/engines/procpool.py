"""Run an engine's recognizers in worker processes (multi-core, GIL-free for the server).

Why: pocketsphinx holds the GIL while it decodes, so in-process every session of a
gateway shares one core, and a long decode call stalls the event loop. Here each worker
process hosts one engine and the recognizers of the sessions pinned to it (the least busy
process at ``new_recognizer``); the server talks to it over a pipe. Every call waits at
most ``call_timeout_s``: a hung or dead worker makes the call raise EngineError (the
session ends with 2011) instead of blocking a thread forever.

Worker processes are started by ``load()`` (spawned, daemonic) and live as long as the
engine object; ``close()`` stops them. Calls to one worker are serialized by a lock (the
worker is single-threaded anyway).

A worker goes back to the pool clean or is replaced: a session's close makes the worker
close (and so reset, through the hosted engine's own pool) that session's recognizer. A
worker that cannot do that cleanly is not trusted with new sessions:

* dead, or a call timed out (killed): replaced at the next ``new_recognizer``;
* alive but its close failed (the hosted engine broke its "close never raises" contract,
  its state is unknown): *retired* — no new session is pinned to it, a fresh worker takes
  its place at the next ``new_recognizer``, and it is stopped when its last session ends.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from voxlane.gateway.engines.base import EngineError, Recognizer, SpeechEvent, SttEngine
from voxlane.gateway.protocol import ProtocolViolation, SessionSettings

__all__ = ["EngineFactory", "ProcessPoolEngine"]

_log = logging.getLogger("voxlane.gateway")


#: Builds the hosted engine in the worker, from its name. Must be picklable (a module-level
#: function): it is sent to the spawned process.
EngineFactory = Callable[[str], SttEngine]


def _make_engine(engine_name: str) -> SttEngine:  # pragma: no cover - child
    from voxlane.gateway.engines import make_stt_engine

    return make_stt_engine(engine_name)


def _worker_main(  # pragma: no cover - child
    conn: Connection, engine_name: str, factory: EngineFactory
) -> None:
    engine = factory(engine_name)
    recognizers: dict[int, Recognizer] = {}
    while True:
        try:
            op, rid, arg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if op == "load":
                engine.load()
                result: Any = None
            elif op == "new":
                recognizers[rid] = engine.new_recognizer(arg)
                result = None
            elif op == "feed":
                result = recognizers[rid].feed(arg)
            elif op == "finalize":
                result = recognizers[rid].finalize()
            elif op == "close":
                rec = recognizers.pop(rid, None)
                if rec is not None:
                    rec.close()
                result = None
            elif op == "stop":
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown op {op!r}")
        except ProtocolViolation as exc:
            conn.send(("violation", (int(exc.code), exc.message)))
        except Exception as exc:
            conn.send(("error", repr(exc)))
        else:
            conn.send(("ok", result))


class _WorkerReportedError(EngineError):
    """The worker answered, with a failure (it is alive; its state may not be clean)."""


class _Worker:
    def __init__(self, engine_name: str, ctx: Any, factory: EngineFactory) -> None:
        parent, child = ctx.Pipe()
        self.conn: Connection = parent
        self.proc = ctx.Process(
            target=_worker_main,
            args=(child, engine_name, factory),
            daemon=True,
            name=f"voxlane-{engine_name}-worker",
        )
        self.proc.start()
        child.close()
        self.lock = threading.Lock()
        # Guarded by the pool's lock:
        self.sessions = 0
        #: No new sessions: replaced at the next new_recognizer, stopped once unused.
        self.retiring = False

    def stop(self, timeout: float) -> None:
        """End the process: ``stop`` asked within ``timeout``, then killed. Bounded."""
        if self.proc.is_alive():
            try:
                self.call("stop", 0, None, timeout)
            except EngineError:
                pass
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(1.0)
        self.conn.close()

    def call(self, op: str, rid: int, arg: Any, timeout: float) -> Any:
        with self.lock:
            try:
                self.conn.send((op, rid, arg))
                if not self.conn.poll(timeout):
                    # The reply would arrive out of step with the next call: this worker
                    # is no longer usable. Kill it; its sessions fail with EngineError.
                    self.proc.kill()
                    raise EngineError(f"engine worker did not answer {op!r} in {timeout}s")
                status, value = self.conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                raise EngineError(f"engine worker is gone ({exc!r})") from exc
        if status == "ok":
            return value
        if status == "violation":
            from voxlane.gateway.protocol import ErrorCode

            code, message = value
            raise ProtocolViolation(ErrorCode(code), message)
        raise _WorkerReportedError(f"engine worker failed: {value}")


class _RemoteRecognizer:
    def __init__(self, pool: ProcessPoolEngine, worker: _Worker, rid: int) -> None:
        self._pool = pool
        self._worker = worker
        self._rid = rid
        self._closed = False

    def feed(self, pcm16: bytes) -> list[SpeechEvent]:
        return list(self._worker.call("feed", self._rid, pcm16, self._pool.call_timeout_s))

    def finalize(self) -> list[SpeechEvent]:
        return list(self._worker.call("finalize", self._rid, None, self._pool.call_timeout_s))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._worker.call("close", self._rid, None, self._pool.call_timeout_s)
        except _WorkerReportedError as exc:
            # The hosted recognizer did not release cleanly: the worker is not trusted
            # with another session.
            _log.warning("engine worker %s retired: %s", self._worker.proc.pid, exc)
            self._pool.retire(self._worker)
        except EngineError:
            pass  # the worker is gone (or killed on a timeout): it is replaced anyway
        finally:
            self._pool.release(self._worker)


class ProcessPoolEngine:
    """An :class:`SttEngine` whose recognizers live in ``processes`` worker processes."""

    def __init__(
        self,
        engine_name: str,
        *,
        processes: int,
        call_timeout_s: float = 10.0,
        factory: EngineFactory = _make_engine,
    ) -> None:
        """``factory(engine_name)`` builds the engine in each worker (default: the engine
        of that name); it must be a picklable module-level function."""
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.name = engine_name
        self.call_timeout_s = call_timeout_s
        self._engine_name = engine_name
        self._factory = factory
        self._processes = processes
        self._workers: list[_Worker] = []
        # Replaced workers that still serve sessions; stopped by their last release.
        self._retired: list[_Worker] = []
        self._lock = threading.Lock()
        self._revive_lock = threading.Lock()
        self._ids = itertools.count(1)

    def load(self) -> None:
        """Start the workers and load the model in each (blocking, idempotent)."""
        with self._lock:
            if self._workers:
                return
            ctx = mp.get_context("spawn")  # no fork of a process with threads and a loop
            workers = [
                _Worker(self._engine_name, ctx, self._factory) for _ in range(self._processes)
            ]
            self._workers = workers
        for worker in workers:
            # Model loading is slow (whisper) but bounded: 120 s per worker.
            worker.call("load", 0, None, 120.0)

    def _revive(self) -> None:
        """Replace dead workers (a crash, a kill, a timed-out call) and retiring ones."""
        with self._revive_lock:
            with self._lock:
                stale = [
                    i for i, w in enumerate(self._workers) if w.retiring or not w.proc.is_alive()
                ]
            for i in stale:
                fresh = _Worker(self._engine_name, mp.get_context("spawn"), self._factory)
                try:
                    fresh.call("load", 0, None, 120.0)
                except EngineError:
                    fresh.proc.kill()
                    raise
                with self._lock:
                    if i >= len(self._workers):  # closed meanwhile
                        fresh.proc.kill()
                        return
                    old, self._workers[i] = self._workers[i], fresh
                    old.retiring = True
                    unused = old.sessions == 0
                    if not unused:
                        self._retired.append(old)
                if unused:
                    old.stop(1.0)

    def new_recognizer(self, settings: SessionSettings) -> Recognizer:
        self.load()
        self._revive()
        with self._lock:
            alive = [w for w in self._workers if w.proc.is_alive() and not w.retiring]
            if not alive:
                raise EngineError("no engine worker is alive")
            worker = min(alive, key=lambda w: w.sessions)
            worker.sessions += 1
            rid = next(self._ids)
        try:
            worker.call("new", rid, settings, self.call_timeout_s)
        except BaseException:
            self.release(worker)
            raise
        return _RemoteRecognizer(self, worker, rid)

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes in the pool (for supervision and tests)."""
        with self._lock:
            return [w.proc.pid for w in self._workers if w.proc.pid is not None]

    def retired_worker_pids(self) -> list[int]:
        """PIDs of replaced workers still serving their last sessions."""
        with self._lock:
            return [w.proc.pid for w in self._retired if w.proc.pid is not None]

    def retire(self, worker: _Worker) -> None:
        """Pin no new session to ``worker``; it is replaced and stopped once unused."""
        with self._lock:
            worker.retiring = True

    def release(self, worker: _Worker) -> None:
        """A session of ``worker`` ended (its recognizer closed or abandoned)."""
        with self._lock:
            worker.sessions -= 1
            stop = worker.sessions == 0 and worker in self._retired
            if stop:
                self._retired.remove(worker)
        if stop:
            worker.stop(1.0)

    def close(self) -> None:
        """Stop every worker (bounded: 2 s each, then killed). Idempotent."""
        with self._lock:
            workers, self._workers = self._workers, []
            workers += self._retired
            self._retired = []
        for worker in workers:
            worker.stop(2.0)
