"""The worker: takes calls from a ``CallSource``, runs each in a job process under a
supervisor, writes every job's report durably, and stops on time.

Lifecycle (explicit states)::

    NEW ──run──▶ STARTING ──pool warm──▶ RUNNING ──stop()──▶ DRAINING ──(drain_timeout |
                    │ stop() / no job process        │        stop() again)──▶ FORCING
                    └──────────▶ STOPPED ◀── all jobs ended ──┴─────────────────────┘

STARTING warms the job pool (bounded by ``spawn_timeout``) and takes no calls (a SIP
source answers 503; ``/healthz`` says ``starting``). The worker is *ready* — the
``ready`` property, :meth:`wait_ready`, ``/healthz`` 200 — once it is RUNNING and its
source is serving: only then is a first call answered, so only then announce the worker.
RUNNING accepts up to ``max_jobs`` calls. DRAINING rejects new calls ("busy") and lets the
active ones end by themselves; FORCING asks every job to close, and their supervisors
escalate to SIGTERM/SIGKILL. The whole exit is bounded: drain_timeout + job_close_timeout
+ sigterm_timeout + sigkill_timeout + a second of slack; whatever is still running then is
abandoned (its process was SIGKILLed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.aio.tasks import TaskOwner, cancel_and_wait
from voxlane.core.supervision import JobOutcome, LadderConfig
from voxlane.voice.report import REPORT_MODE, iso, report_file_name, write_json_durably
from voxlane.worker.metrics import WorkerMetrics
from voxlane.worker.pool import JobStartError, ProcessPool
from voxlane.worker.source import Call, CallSource
from voxlane.worker.supervisor import JobSupervisor, SupervisionResult

log = logging.getLogger("voxlane.worker")
RECENT_RESULTS = 100


class WorkerState(Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    FORCING = "forcing"
    STOPPED = "stopped"


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """``prewarm``: job processes kept ready (default: ``max_jobs``, at most 4)."""

    agent_file: Path
    reports_dir: Path
    max_jobs: int = 4
    prewarm: int | None = None
    drain_timeout: float = 30.0
    ladder: LadderConfig = field(default_factory=LadderConfig)
    spawn_timeout: float = 30.0
    shutdown_timeout: float = 2.0
    """Bound on a job's shutdown callbacks (all together)."""
    heartbeat_interval: float = 0.25
    log_format: str = "text"
    """Job processes log as "text" or "json" lines (with job and session ids)."""
    stop_when_source_done: bool = False
    """Drain and stop once the source's ``run`` returns (finite synthetic runs, benches)."""
    report_mode: int = REPORT_MODE
    """File mode of the job reports (they hold transcripts): owner only by default."""

    def exit_budget(self) -> float:
        """The longest a forced stop can take once forcing began."""
        lad = self.ladder
        return lad.job_close_timeout + lad.sigterm_timeout + lad.sigkill_timeout + 1.0


@dataclass
class _Job:
    call: Call
    supervisor: JobSupervisor | None = None
    hangup: str | None = None
    force: bool = False


class Worker:
    """Implements ``CallSink`` for its source. See the module docstring for the lifecycle."""

    def __init__(
        self,
        config: WorkerConfig,
        source: CallSource,
        *,
        metrics: WorkerMetrics | None = None,
        clock: Clock = DEFAULT_CLOCK,
    ) -> None:
        self.config = config
        self.source = source
        self.metrics = metrics or WorkerMetrics()
        self.metrics.open_connections.set_function(self._open_connections)
        self._clock = clock
        self.state = WorkerState.NEW
        prewarm = config.prewarm if config.prewarm is not None else min(config.max_jobs, 4)
        self.pool = ProcessPool(
            config.agent_file,
            size=prewarm,
            spawn_timeout=config.spawn_timeout,
            job_args=[
                "--heartbeat-interval",
                str(config.heartbeat_interval),
                "--shutdown-timeout",
                str(config.shutdown_timeout),
                "--log-level",
                logging.getLevelName(logging.getLogger().getEffectiveLevel()),
                "--log-format",
                config.log_format,
            ],
            clock=clock,
        )
        self._jobs: dict[str, _Job] = {}
        self._owner = TaskOwner("worker", on_error=self._on_job_error, clock=clock)
        self._stop_requests = 0
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        # Counts for the life of the worker; details only for the last few jobs (a worker
        # runs for weeks: nothing here may grow with the number of calls).
        self.outcomes: Counter[str] = Counter()
        self.reports_written = 0
        self.recent: deque[SupervisionResult] = deque(maxlen=RECENT_RESULTS)

    # -- CallSink ---------------------------------------------------------------------------
    def offer(self, call: Call) -> bool:
        reason = None
        if self.state is not WorkerState.RUNNING:
            reason = "busy"  # draining or stopping: the network should try another worker
        elif len(self._jobs) >= self.config.max_jobs:
            reason = "busy"
        elif call.call_id in self._jobs:
            reason = "duplicate"
        if reason is not None:
            self.metrics.rejected.labels(reason).inc()
            self.source.reject(call, reason)
            return False
        job = _Job(call)
        self._jobs[call.call_id] = job
        self.metrics.accepted.inc()
        self.metrics.active_jobs.set(len(self._jobs))
        self._owner.spawn(self._run_job(job), name=f"job:{call.call_id}")
        return True

    def remote_hangup(self, call_id: str, reason: str = "hangup") -> None:
        job = self._jobs.get(call_id)
        if job is None:
            return
        job.hangup = reason
        if job.supervisor is not None:
            job.supervisor.participant_disconnected(reason)

    # -- lifecycle --------------------------------------------------------------------------
    def stop(self) -> None:
        """First call: drain. Second: force at once. Synchronous (a signal handler)."""
        self._stop_requests += 1
        self.metrics.health = "draining"
        self._wake.set()

    @property
    def ready(self) -> bool:
        """Whether the worker takes calls now: RUNNING, its source serving."""
        return self._ready.is_set() and self.state is WorkerState.RUNNING

    async def wait_ready(self, timeout: float) -> bool:
        """Wait (bounded) until the worker takes calls; False at ``timeout`` or once it
        stopped, or will never be ready (stopped while starting, no job process)."""
        deadline = self._clock.now() + timeout
        while not self.ready and self._clock.now() < deadline:
            if self.state is WorkerState.STOPPED or self._stop_requests:
                return False
            await self._wait_event(self._ready, min(1.0, deadline - self._clock.now()))
        return self.ready

    @property
    def active_jobs(self) -> int:
        return len(self._jobs)

    async def run(self) -> int:
        """Run until stopped (or the source is done, with ``stop_when_source_done``, or
        failed). Returns 0 once every job has ended and its report is written; 1 at once if
        no job process could be started, and 1 (after the drain) if the call source failed."""
        self.state = WorkerState.STARTING
        self.pool.start()
        # Take calls once the pool is warm (bounded, and cut short by stop()): the first
        # callers get fast call setup too, and none is turned away by a cold worker.
        warm = asyncio.ensure_future(self.pool.wait_warm(self.config.spawn_timeout))
        while not warm.done() and self._stop_requests == 0:
            await self._wait_wake_or(warm, self.config.spawn_timeout)
        warm.cancel()
        if self.pool.size and self.pool.idle_count == 0 and self.pool.stats.failed:
            # Not one job process came up (a broken agent file, say): fail fast, take no calls.
            log.error("worker: job processes fail to start; not taking calls")
            self.state = WorkerState.STOPPED
            self._ready.set()  # wakes wait_ready (which then sees STOPPED)
            await self.pool.aclose(timeout=3.0)
            return 1
        if self._stop_requests:
            # Stopped while starting: no call was taken and none will be (the source never
            # runs); what it holds (a bound SIP socket) is released all the same.
            self.state = WorkerState.STOPPED
            self._ready.set()  # wakes wait_ready (which then sees STOPPED)
            await self._close_source()
            return 0
        self.state = WorkerState.RUNNING
        source_task = self._owner.spawn(self._serve_source(), name="source")
        source_task.add_done_callback(lambda _: self._wake.set())
        try:
            while self._stop_requests == 0 and not self._source_finished(source_task):
                await self._wait_wake(1.0)
            await self._drain(source_task)
        finally:
            self.state = WorkerState.STOPPED
            self._ready.set()  # wakes wait_ready (which then sees STOPPED)
            await cancel_and_wait([source_task], self._clock.now() + 1.0, self._clock)
            await self._close_source()
        source_failed = (
            source_task.done()
            and not source_task.cancelled()
            and source_task.exception() is not None
        )
        return 1 if source_failed else 0

    async def _close_source(self) -> None:
        """Close the source (bounded: 1 s), then the pool (3 s)."""
        close = asyncio.ensure_future(self.source.aclose())
        await asyncio.wait({close}, timeout=1.0)
        close.cancel()
        await self.pool.aclose(timeout=3.0)

    async def _serve_source(self) -> None:
        """The source's ``run``; the worker is ready once that run has taken its first step
        (a source registers the sink before its first await: the callback runs after that
        step, on the same loop, so no INVITE can slip in between). A run that ended in that
        first step (it failed at once) never makes the worker ready."""
        serving = asyncio.current_task()
        asyncio.get_running_loop().call_soon(self._mark_ready, serving)
        await self.source.run(self)

    def _mark_ready(self, serving: asyncio.Task[object] | None) -> None:
        if serving is not None and serving.done():
            return
        if self.state is WorkerState.RUNNING and self._stop_requests == 0:
            self.metrics.health = "ok"
            self._ready.set()

    def _source_finished(self, task: asyncio.Task[None]) -> bool:
        """Whether to stop taking calls because of the source: it is done and we were told
        to stop then, or it failed (a source that cannot offer calls any more)."""
        if not task.done():
            return False
        if task.cancelled() or task.exception() is not None:
            log.error(
                "worker: the call source stopped: %r",
                None if task.cancelled() else task.exception(),
            )
            return True
        return self.config.stop_when_source_done

    async def _drain(self, source_task: asyncio.Task[None]) -> None:
        """DRAINING until the jobs ended, ``drain_timeout`` or a second stop(); then FORCING
        (close requests; supervisors escalate) until they ended or the exit budget is spent."""
        self.state = WorkerState.DRAINING
        self.metrics.health = "draining"
        deadline = self._clock.now() + self.config.drain_timeout
        while self._jobs and self._clock.now() < deadline and self._stop_requests < 2:
            await self._wait_wake(min(1.0, max(0.0, deadline - self._clock.now())))
        self.state = WorkerState.FORCING
        if self._jobs:
            log.warning("worker: forcing %d job(s) to close", len(self._jobs))
        for job in list(self._jobs.values()):
            job.force = True
            if job.supervisor is not None:
                job.supervisor.request_close("job_shutdown")
        budget_end = self._clock.now() + self.config.exit_budget()
        while self._jobs and self._clock.now() < budget_end:
            await self._wait_wake(min(1.0, max(0.0, budget_end - self._clock.now())))
        leftover = [t for t in self._owner.live if t is not source_task]
        if leftover:
            log.error("worker: %d job task(s) did not end in the exit budget", len(leftover))
        await self._owner.shutdown(self._clock.now() + 1.0)

    async def _wait_wake(self, timeout: float) -> None:
        """Until something happened (job ended, stop(), source done) or ``timeout``."""
        await self._wait_event(self._wake, timeout)
        self._wake.clear()  # after waking: a set() before we waited is not lost

    @staticmethod
    async def _wait_event(event: asyncio.Event, timeout: float) -> None:
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({waiter}, timeout=max(0.0, timeout))
        finally:
            waiter.cancel()

    async def _wait_wake_or(self, other: asyncio.Future[Any], timeout: float) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait(
                {waiter, other}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        self._wake.clear()

    # -- one job ----------------------------------------------------------------------------
    async def _run_job(self, job: _Job) -> None:
        call = job.call
        started = self._clock.now()
        result: SupervisionResult | None = None
        try:
            try:
                process = await self.pool.acquire()
            except JobStartError as exc:
                log.error("job %s: no job process: %s", call.call_id, exc)
                block = {"outcome": "crashed", "error": str(exc)}
                result = SupervisionResult(call.call_id, JobOutcome.CRASHED, None, block)
                return
            sup = JobSupervisor(
                call.call_id,
                process,
                self.config.ladder,
                clock=self._clock,
                on_call_event=call.job_event,
            )
            job.supervisor = sup
            if job.hangup is not None:
                sup.participant_disconnected(job.hangup)
            if job.force:
                sup.request_close("job_shutdown")
            result = await sup.run(call.job_spec())
            if sup.first_heartbeat_at is not None:
                # Offer accepted → the job's first heartbeat (its call is running).
                latency = (sup.first_heartbeat_at - started) * 1000
                result.supervisor["start_latency_ms"] = round(latency, 3)
        finally:
            self._jobs.pop(call.call_id, None)
            self.metrics.active_jobs.set(len(self._jobs))
            if result is not None:
                self._finish(call, result, started)
            self._wake.set()

    def _finish(self, call: Call, result: SupervisionResult, started: float) -> None:
        report = _merge_report(call.call_id, result, started, self._clock.now())
        try:
            report.update(call.report_extra(result.outcome, report))
        except Exception:
            log.exception("job %s: its call source failed on report_extra", call.call_id)
        path = self.config.reports_dir / report_file_name(call.call_id)
        try:
            write_json_durably(path, report, mode=self.config.report_mode)
            self.reports_written += 1
        except OSError:
            log.exception("job %s: could not write its report", call.call_id)
        self.outcomes[result.outcome.value] += 1
        self.recent.append(result)
        job_block = (result.report or {}).get("job") or {}
        reconnects = job_block.get("reconnects", result.supervisor.get("reconnects"))
        self.metrics.record_job(
            result.outcome.value, result.close_duration_s, result.report, reconnects
        )
        log.info(
            "job %s ended: %s",
            call.call_id,
            result.outcome.value,
            extra={"job_id": call.call_id, "outcome": result.outcome.value},
        )
        try:
            self.source.call_ended(call, result.outcome, report)
        except Exception:
            log.exception("call source failed on call_ended(%s)", call.call_id)

    def _on_job_error(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        log.error("worker task %s failed: %r", task.get_name(), exc, exc_info=exc)

    def _open_connections(self) -> float:
        return float(
            sum(j.supervisor.open_connections for j in self._jobs.values() if j.supervisor)
        )


def _merge_report(
    job_id: str, result: SupervisionResult, started: float, ended: float
) -> dict[str, Any]:
    """The job's session report with the supervisor's block; when the job could not report
    (killed, crashed), what the worker knows, in the same shape (DESIGN §8)."""
    own = result.report if result.report is not None and "error" not in result.report else None
    if own is not None:
        report = dict(own)
    else:
        now = time.time()
        error = (result.report or {}).get("error") or f"job {result.outcome.value}"
        report = {
            "session_id": None,
            "started_at": iso(now - (ended - started)),
            "ended_at": iso(now),
            "close": {
                "reason": "job_" + result.outcome.value,
                "error": error,
                "duration_ms": result.supervisor.get("close_duration_ms"),
                "steps": [],
                "abandoned": [],
                # The process is gone: the OS closed whatever sockets it held.
                "open_connections_after": 0,
            },
            "history": [],
            "usage": {"stt_audio_s": 0.0, "tts_chars": 0, "llm_turns": 0},
        }
    report["job_id"] = job_id
    report["supervisor"] = result.supervisor
    return report
