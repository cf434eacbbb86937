"""The voxlane local inference gateway server: websocket endpoints hosting speech engines.

Usage::

    server = await start_gateway(GatewayConfig(api_key="k", port=0, stt_engine="whisper"))
    print(server.stt_url)          # ws://127.0.0.1:PORT/v1/stt
    ...
    await server.aclose()          # bounded: session.closed to all, close 1000, then abort

Routing is a table of path -> connection handler (``/v1/stt`` today; ``/v1/tts`` will sit
beside it). Handshakes are checked in ``process_request``: an unknown path gets HTTP 404, a
missing or wrong ``Authorization: Bearer KEY`` gets 401, a refusing fault plan 503; none of
them creates a session. The protocol is in ``docs/gateway-protocol.md``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from voxlane.aio.tasks import wait_pending
from voxlane.gateway import protocol as p
from voxlane.gateway.connlog import ConnectionRecord
from voxlane.gateway.engines import SttEngine, make_stt_engine
from voxlane.gateway.engines.procpool import ProcessPoolEngine
from voxlane.gateway.faults import FaultPlan
from voxlane.gateway.stt_session import SessionLimits, SttConnection
from voxlane.gateway.tts_session import TtsConnection, TtsLimits

__all__ = [
    "GatewayConfig",
    "GatewayServer",
    "GatewayStatistics",
    "shared_stt_engine",
    "start_gateway",
]

_log = logging.getLogger("voxlane.gateway")

_engines: dict[str, SttEngine] = {}  # key: "name/processes"
_engines_lock = threading.Lock()


def shared_stt_engine(name: str, processes: int = 0) -> SttEngine:
    """The process-wide engine of that name (models are loaded once per process).

    ``processes`` > 0 runs the recognizers in that many worker processes instead of
    threads of this process (see :mod:`voxlane.gateway.engines.procpool`).
    """
    key = f"{name}/{processes}"
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if processes > 0:
                engine = ProcessPoolEngine(name, processes=processes)
            else:
                engine = make_stt_engine(name)
            _engines[key] = engine
        return engine


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """Configuration of one gateway server (immutable).

    ``stt_engine`` is an engine name (``"pocketsphinx"``, ``"whisper"``; shared per
    process) or an engine object. ``port=0`` picks a free port (see ``GatewayServer.port``).
    """

    api_key: str
    host: str = "127.0.0.1"
    port: int = 0
    idle_timeout_s: float = 30.0
    stt_engine: str | SttEngine = "pocketsphinx"
    max_sessions: int = 8
    max_frame_bytes: int = p.DEFAULT_MAX_FRAME_BYTES
    #: Deadline of one outgoing frame: a client that does not read for this long is a
    #: slow consumer (error 2014, close 1008 "client too slow").
    send_timeout_s: float = 5.0
    #: Budget of one connection's close (drain, final event, closing handshake).
    close_timeout_s: float = 2.0
    #: Budget of ``GatewayServer.aclose()``; connections left after it are aborted.
    shutdown_timeout_s: float = 3.0
    #: Bounded audio queue between socket and engine (frames), and how long a full queue
    #: may block reading before the session ends with OVERLOADED (2012).
    queue_frames: int = 100
    queue_timeout_s: float = 5.0
    #: Deadline of loading the engine's model at start.
    load_timeout_s: float = 120.0
    #: Engine threads shared by all sessions (each session uses one at a time).
    engine_threads: int = 4
    #: Worker processes hosting the recognizers (0: threads of this process). pocketsphinx
    #: holds the GIL while decoding: with N processes it uses N cores.
    engine_processes: int = 0
    #: Records kept in ``GatewayServer.connection_log`` (oldest dropped first).
    connection_log_size: int = 10000

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("api_key must be a non-empty string")
        if self.idle_timeout_s <= 0 or self.max_sessions < 1 or self.max_frame_bytes < 2:
            raise ValueError("idle_timeout_s, max_sessions and max_frame_bytes must be > 0")
        if self.engine_processes < 0 or self.engine_threads < 1:
            raise ValueError("engine_processes must be >= 0 and engine_threads >= 1")


class _Slots:
    """Counts live sessions against max_sessions. Loop-thread only (no awaits inside)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.in_use = 0

    def try_acquire(self) -> bool:
        if self.in_use >= self._limit:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use -= 1


@dataclass(frozen=True, slots=True)
class GatewayStatistics:
    engine: str
    live_connections: int
    live_sessions: int
    max_sessions: int
    #: Connections that reached the HTTP handshake since start (refused ones included).
    connections_seen: int
    closing: bool


_Handler = Callable[[ServerConnection, ConnectionRecord], Awaitable[None]]


class GatewayServer:
    """A started gateway. Create with :func:`start_gateway`; end with :meth:`aclose`."""

    def __init__(
        self,
        config: GatewayConfig,
        engine: SttEngine,
        executor: ThreadPoolExecutor,
        faults: FaultPlan,
    ) -> None:
        self._config = config
        self._engine = engine
        self._executor = executor
        self._faults = faults
        self._loop = asyncio.get_running_loop()
        self._ws_server: Server | None = None
        self._port = 0
        self._log: deque[ConnectionRecord] = deque(maxlen=config.connection_log_size)
        self._records: dict[int, ConnectionRecord] = {}
        self._conn_seq = 0
        self._live: dict[SttConnection | TtsConnection, asyncio.Task[None] | None] = {}
        self._slots = _Slots(config.max_sessions)
        self._closing: asyncio.Task[None] | None = None
        self._routes: dict[str, _Handler] = {
            p.STT_PATH: self._serve_stt,
            p.TTS_PATH: self._serve_tts,
        }
        self._limits = SessionLimits(
            idle_timeout_s=config.idle_timeout_s,
            max_frame_bytes=config.max_frame_bytes,
            send_timeout_s=config.send_timeout_s,
            close_timeout_s=config.close_timeout_s,
            queue_frames=config.queue_frames,
            queue_timeout_s=config.queue_timeout_s,
        )
        self._tts_limits = TtsLimits(
            idle_timeout_s=config.idle_timeout_s,
            send_timeout_s=config.send_timeout_s,
            close_timeout_s=config.close_timeout_s,
        )

    # ---------------------------------------------------------------- public

    @property
    def config(self) -> GatewayConfig:
        return self._config

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when the config asked for port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL, ``ws://HOST:PORT`` (no path)."""
        return f"ws://{self._config.host}:{self.port}"

    @property
    def stt_url(self) -> str:
        """URL of the STT endpoint, ``ws://HOST:PORT/v1/stt``."""
        return self.url + p.STT_PATH

    @property
    def tts_url(self) -> str:
        """URL of the TTS endpoint, ``ws://HOST:PORT/v1/tts``."""
        return self.url + p.TTS_PATH

    @property
    def connection_log(self) -> list[ConnectionRecord]:
        """Connections that reached the HTTP handshake, oldest first (a copy; the last
        ``config.connection_log_size`` of them)."""
        return list(self._log)

    @property
    def live_sessions(self) -> int:
        """Sessions currently holding a max_sessions slot."""
        return self._slots.in_use

    @property
    def closed(self) -> bool:
        return self._closing is not None and self._closing.done()

    def statistics(self) -> GatewayStatistics:
        """A snapshot of the server's counters (never blocks)."""
        return GatewayStatistics(
            engine=self._engine.name,
            live_connections=len(self._live),
            live_sessions=self._slots.in_use,
            max_sessions=self._config.max_sessions,
            connections_seen=self._conn_seq,
            closing=self._closing is not None,
        )

    async def __aenter__(self) -> GatewayServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Shut down, bounded by ``config.shutdown_timeout_s`` (+ a small margin).

        Stops accepting; every live connection gets ``session.closed`` then close 1000;
        connections still open at the deadline are aborted. Idempotent; concurrent callers
        wait for the same close; cancelling a caller does not stop the close.
        """
        if self._closing is None:
            self._closing = asyncio.create_task(self._aclose(), name="voxlane-gateway-aclose")
        deadline = self._loop.time() + self._config.shutdown_timeout_s + 1.0
        await wait_pending({self._closing}, deadline)

    # ---------------------------------------------------------------- internals

    async def _listen(self) -> None:
        cfg = self._config
        self._ws_server = await serve(
            self._handle,
            cfg.host,
            cfg.port,
            process_request=self._process_request,
            process_response=self._process_response,
            compression=None,
            # Frames over max_frame_bytes get error 2010 from the session; websockets'
            # own limit (close 1009, no event) is only a backstop against huge frames.
            max_size=max(4 * cfg.max_frame_bytes, 1 << 20),
            close_timeout=cfg.close_timeout_s,
            open_timeout=10.0,
            ping_interval=20.0,
            ping_timeout=20.0,
            max_queue=32,
        )
        # Kept: the listening sockets are gone once the server closes.
        self._port = int(self._ws_server.sockets[0].getsockname()[1])

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        remote = conn.remote_address
        self._conn_seq += 1
        record = ConnectionRecord(
            conn_id=self._conn_seq,
            remote_port=int(remote[1]) if remote else None,
            path=request.path,
            opened_at=self._loop.time(),
        )
        self._log.append(record)
        self._records[id(conn)] = record
        status = self._check_request(request)
        record.http_status = int(status)
        if status is HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        record.closed_at = record.opened_at
        record.close_reason = f"http_{int(status)}"
        del self._records[id(conn)]
        _log.info("conn %d: refused %d %s", record.conn_id, int(status), record.path)
        return conn.respond(status, f"{status.phrase}\n")

    def _process_response(
        self, conn: ServerConnection, request: Request, response: Response
    ) -> None:
        # A request we let through can still fail the websocket handshake (bad upgrade
        # headers, say): log the real status and forget it, as no handler will run.
        record = self._records.get(id(conn))
        if record is not None and response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            record.http_status = response.status_code
            record.closed_at = self._loop.time()
            record.close_reason = f"http_{response.status_code}"
            del self._records[id(conn)]

    def _check_request(self, request: Request) -> HTTPStatus:
        if self._faults.refuse_connections or self._closing is not None:
            return HTTPStatus.SERVICE_UNAVAILABLE
        if urlsplit(request.path).path not in self._routes:
            return HTTPStatus.NOT_FOUND
        expected = f"Bearer {self._config.api_key}".encode()
        given = (request.headers.get("Authorization") or "").encode()
        if not hmac.compare_digest(given, expected):
            return HTTPStatus.UNAUTHORIZED
        return HTTPStatus.SWITCHING_PROTOCOLS

    async def _handle(self, conn: ServerConnection) -> None:
        record = self._records.pop(id(conn), None)
        if record is None or conn.request is None:  # cannot happen: process_request ran
            await conn.close(1011)
            return
        _log.info("conn %d: open %s from port %s", record.conn_id, record.path, record.remote_port)
        await self._routes[urlsplit(record.path).path](conn, record)

    async def _serve_stt(self, conn: ServerConnection, record: ConnectionRecord) -> None:
        session = SttConnection(
            conn,
            record,
            engine=self._engine,
            executor=self._executor,
            limits=self._limits,
            slots=self._slots,
            faults=self._faults,
            on_done=self._forget,
        )
        self._live[session] = asyncio.current_task()
        if self._closing is not None:  # shutdown raced the handshake
            session.request_shutdown()
        await session.run()

    async def _serve_tts(self, conn: ServerConnection, record: ConnectionRecord) -> None:
        session = TtsConnection(
            conn,
            record,
            executor=self._executor,
            limits=self._tts_limits,
            on_done=self._forget,
        )
        self._live[session] = asyncio.current_task()
        if self._closing is not None:  # shutdown raced the handshake
            session.request_shutdown()
        await session.run()

    def _forget(self, session: SttConnection | TtsConnection) -> None:
        self._live.pop(session, None)

    async def _aclose(self) -> None:
        deadline = self._loop.time() + self._config.shutdown_timeout_s
        try:
            if self._ws_server is not None:
                # Stop listening; OPEN connections are ours to close (below), so
                # close_connections=False; websockets answers opening handshakes 503.
                self._ws_server.close(close_connections=False)
            sessions = list(self._live)
            for session in sessions:
                session.request_shutdown()
            handlers = {t for t in self._live.values() if t is not None}
            pending = await wait_pending(set(handlers), deadline)
            if pending:
                _log.warning("shutdown: aborting %d connection(s) past the deadline", len(pending))
                for session in list(self._live):
                    session.abort()
                await wait_pending(pending, self._loop.time() + 0.5)
            if self._ws_server is not None:
                waiter = asyncio.ensure_future(self._ws_server.wait_closed())
                if await wait_pending({waiter}, max(deadline, self._loop.time() + 0.2)):
                    waiter.cancel()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            _log.info("gateway closed")


async def start_gateway(config: GatewayConfig, *, faults: FaultPlan | None = None) -> GatewayServer:
    """Load the engine (off the loop, bounded by ``load_timeout_s``) and start listening.

    Returns a started :class:`GatewayServer`; the caller must ``await server.aclose()``.
    Raises TimeoutError if the model does not load in time, OSError if the port is taken,
    EngineError if the engine is not installed.
    """
    engine = (
        shared_stt_engine(config.stt_engine, config.engine_processes)
        if isinstance(config.stt_engine, str)
        else config.stt_engine
    )
    executor = ThreadPoolExecutor(
        max_workers=config.engine_threads, thread_name_prefix="voxlane-engine"
    )
    loop = asyncio.get_running_loop()
    try:
        loader = asyncio.ensure_future(loop.run_in_executor(executor, engine.load))
        if await wait_pending({loader}, loop.time() + config.load_timeout_s):
            raise TimeoutError(f"engine {engine.name} did not load in {config.load_timeout_s}s")
        loader.result()
        server = GatewayServer(config, engine, executor, faults or FaultPlan())
        await server._listen()
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    _log.info("gateway listening on %s (engine=%s)", server.url, engine.name)
    return server
