"""Worker metrics (Prometheus) and a tiny ``/metrics`` + ``/healthz`` HTTP server on
127.0.0.1.

Each ``WorkerMetrics`` has its own registry (several workers in one test process do not
collide). The HTTP server is plain asyncio: every read has a deadline, every connection is
closed after one response.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REQUEST_TIMEOUT = 5.0
CLOSE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 15.0)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.active_jobs = Gauge("voxlane_active_jobs", "Jobs running now", registry=r)
        self.jobs = Counter(
            "voxlane_jobs", "Jobs ended, by supervisor outcome", ["outcome"], registry=r
        )
        self.close_duration = Histogram(
            "voxlane_job_close_duration_seconds",
            "From the close request (hangup, drain, shutdown) to the job process reaped",
            buckets=CLOSE_BUCKETS,
            registry=r,
        )
        self.open_connections = Gauge(
            "voxlane_open_provider_connections",
            "Provider connections open in running jobs (heartbeats) plus those a finished "
            "job reported left open",
            registry=r,
        )
        self.left_open = Counter(
            "voxlane_provider_connections_left_open",
            "Connections a job's report said were still open after its close",
            registry=r,
        )
        self.abandoned = Counter(
            "voxlane_abandoned_tasks", "Tasks abandoned by session closes", registry=r
        )
        self.kills = Counter(
            "voxlane_supervisor_kills", "Job processes ended by a signal", ["rung"], registry=r
        )
        self.reconnects = Counter(
            "voxlane_provider_reconnects",
            "Provider reconnects in ended jobs, by provider kind and class (retry, idle)",
            ["kind", "class"],
            registry=r,
        )
        self.accepted = Counter("voxlane_calls_accepted", "Calls accepted", registry=r)
        self.rejected = Counter("voxlane_calls_rejected", "Calls rejected", ["reason"], registry=r)
        self.health = "starting"
        """What ``/healthz`` says: ``"ok"`` (200) while the worker takes calls (pool warm,
        source serving); 503 with ``"starting"`` until then, ``"draining"`` once it stops
        taking calls. Set by the worker."""

    @property
    def healthy(self) -> bool:
        """Whether ``/healthz`` answers 200 (the worker takes calls)."""
        return self.health == "ok"

    def record_job(
        self,
        outcome: str,
        close_duration_s: float | None,
        report: dict[str, Any] | None,
        reconnects: dict[str, int] | None = None,
    ) -> None:
        """One ended job. ``reconnects``: its provider reconnects by ``kind:class`` (from
        its report, or its last heartbeat when it could not report)."""
        self.jobs.labels(outcome).inc()
        for key, count in (reconnects or {}).items():
            kind, _, action = key.partition(":")
            if isinstance(count, int) and count > 0:
                self.reconnects.labels(kind, action or "unknown").inc(count)
        if outcome == "killed_after_sigterm":
            self.kills.labels("sigterm").inc()
        elif outcome == "killed_after_sigkill":
            self.kills.labels("sigkill").inc()
        if close_duration_s is not None:
            self.close_duration.observe(close_duration_s)
        close = (report or {}).get("close") or {}
        self.abandoned.inc(len(close.get("abandoned") or []))
        left = close.get("open_connections_after") or 0
        if isinstance(left, int) and left > 0:
            self.left_open.inc(left)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` and ``GET /healthz`` on ``host:port`` (port 0: any free port)."""

    def __init__(self, metrics: WorkerMetrics, *, host: str = "127.0.0.1", port: int = 0):
        self.metrics = metrics
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):  # our own read: honours cancel
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].decode("ascii", "replace") if len(parts) >= 2 else "/"
            if path.startswith("/metrics"):
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self.metrics.render()
            elif path.startswith("/healthz"):
                ok = self.metrics.healthy
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype, body = "text/plain", f"{self.metrics.health}\n".encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            async with asyncio.timeout(REQUEST_TIMEOUT):
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()

    async def aclose(self, timeout: float = 2.0) -> None:
        if self._server is None:
            return
        self._server.close()
        waiter = asyncio.ensure_future(self._server.wait_closed())
        await asyncio.wait({waiter}, timeout=timeout)
        waiter.cancel()
