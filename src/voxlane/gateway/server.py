"""The voxlane local inference gateway server: websocket endpoints hosting speech engines.

Usage::

    server = await start_gateway(GatewayConfig(api_key="k", port=0, stt_engine="whisper"))
    print(server.stt_url)          # ws://127.0.0.1:PORT/v1/stt
    ...
    await server.aclose()          # bounded: session.closed to all, close 1000, then abort

Routing is a table of path -> connection handler (``/v1/stt``, ``/v1/tts``). Handshakes are
checked by :class:`voxlane.gateway.edge.HandshakeGate` (status codes, throttling of failed
handshakes, connection caps, what is logged); none of its refusals creates a session. The
protocol is in ``docs/gateway-protocol.md``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from websockets.asyncio.server import Server, ServerConnection, serve

from voxlane.aio.tasks import wait_pending
from voxlane.gateway import protocol as p
from voxlane.gateway.admission import Admission, AdmissionLimits
from voxlane.gateway.connlog import ConnectionRecord
from voxlane.gateway.edge import GatewayConnection, HandshakeGate
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


def check_api_key(key: str, name: str = "api_key") -> None:
    """Raise ValueError unless ``key`` is a usable bearer key: 1 or more printable ASCII
    characters, no space. The message names ``name`` and never quotes the key.

    Anything else cannot be compared safely: an HTTP header is bytes, and a character
    that has no single byte (``€``) would have to be replaced by something a client can
    send, ``?`` say, which is how ``Bearer ????`` once matched a key of four such
    characters. (Spaces and control characters do not survive header parsing either.)
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"{name} must be a non-empty string")
    bad = next((i for i, c in enumerate(key) if not "!" <= c <= "~"), None)
    if bad is not None:
        raise ValueError(
            f"{name} must be printable ASCII without spaces "
            f"(character {bad + 1} of {len(key)} is not)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """Configuration of one gateway server (immutable).

    ``stt_engine`` is an engine name (``"pocketsphinx"``, ``"whisper"``; shared per
    process) or an engine object. ``port=0`` picks a free port (see ``GatewayServer.port``).
    """

    api_key: str
    host: str = "127.0.0.1"
    port: int = 0
    #: Both endpoints: a connection with nothing to do for this long gets 2007, close 1000.
    idle_timeout_s: float = 30.0
    stt_engine: str | SttEngine = "pocketsphinx"
    #: Live ``/v1/stt`` sessions (more: error 2008 at session.create).
    max_sessions: int = 8
    #: Open ``/v1/tts`` connections (each is one session; more: HTTP 503 at the handshake).
    max_tts_sessions: int = 8
    #: Open TCP connections in all, and from one client address, counted from accept
    #: (handshakes in progress included); more are closed at accept, with no HTTP answer.
    max_connections: int = 256
    max_connections_per_client: int = 32
    #: From TCP accept to the end of the opening handshake (else the connection is dropped).
    handshake_timeout_s: float = 5.0
    #: Failed handshakes (400/401/404) one client address may make in a burst, and how
    #: many more per second it earns back; past them: HTTP 429 for every handshake.
    failed_handshake_burst: int = 10
    failed_handshake_rate: float = 1.0
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
    #: Deadline of the engine starting one session (else error 2011); a recognizer that
    #: arrives later is released at once.
    create_timeout_s: float = 10.0
    #: Engine threads shared by all sessions (each session uses one at a time).
    engine_threads: int = 4
    #: Worker processes hosting the recognizers (0: threads of this process). pocketsphinx
    #: holds the GIL while decoding: with N processes it uses N cores.
    engine_processes: int = 0
    #: Records kept in ``GatewayServer.connection_log`` (oldest dropped first).
    connection_log_size: int = 10000

    def __post_init__(self) -> None:
        """Raises ValueError naming the first field out of range."""
        check_api_key(self.api_key)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, not {self.port}")
        for name in (
            "idle_timeout_s",
            "handshake_timeout_s",
            "send_timeout_s",
            "close_timeout_s",
            "queue_timeout_s",
            "create_timeout_s",
            "load_timeout_s",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a number > 0, not {value}")
        for name in ("max_sessions", "queue_frames", "engine_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.max_frame_bytes < 2:
            raise ValueError(f"max_frame_bytes must be >= 2, not {self.max_frame_bytes}")
        if self.engine_processes < 0:
            raise ValueError(f"engine_processes must be >= 0, not {self.engine_processes}")
        self.admission_limits()  # validates the connection caps and the handshake budget

    def admission_limits(self) -> AdmissionLimits:
        """The caps and failed-handshake budget of :mod:`voxlane.gateway.admission`."""
        return AdmissionLimits(
            max_connections=self.max_connections,
            max_connections_per_client=self.max_connections_per_client,
            max_tts_connections=self.max_tts_sessions,
            failed_handshake_burst=self.failed_handshake_burst,
            failed_handshake_rate=self.failed_handshake_rate,
        )


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
    #: Connections whose handler is running (``/v1/stt`` and ``/v1/tts``).
    live_connections: int
    #: ``/v1/stt`` sessions holding a max_sessions slot.
    live_sessions: int
    max_sessions: int
    #: Connections that reached the HTTP handshake since start (refused ones included).
    connections_seen: int
    closing: bool
    #: Open TCP connections, counted from accept (handshakes in progress included), and
    #: those holding a ``/v1/tts`` place.
    open_connections: int = 0
    open_tts_connections: int = 0
    #: Connections refused by a cap or the failed-handshake throttle since start.
    refused_by_limits: int = 0
    #: Of those, TCP connections closed at accept (a connection cap was reached).
    refused_at_connect: int = 0


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
            create_timeout_s=config.create_timeout_s,
        )
        self._tts_limits = TtsLimits(
            idle_timeout_s=config.idle_timeout_s,
            send_timeout_s=config.send_timeout_s,
            close_timeout_s=config.close_timeout_s,
        )
        self._admission = Admission(config.admission_limits())
        self._gate = HandshakeGate(
            api_key=config.api_key,
            routes=frozenset(self._routes),
            tts_route=p.TTS_PATH,
            admission=self._admission,
            now=self._loop.time,
            refusing=lambda: self._faults.refuse_connections or self._closing is not None,
            on_record=self._log.append,
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
        admission = self._admission.statistics()
        return GatewayStatistics(
            engine=self._engine.name,
            live_connections=len(self._live),
            live_sessions=self._slots.in_use,
            max_sessions=self._config.max_sessions,
            connections_seen=self._gate.connections_seen,
            closing=self._closing is not None,
            open_connections=admission.open_connections,
            open_tts_connections=admission.open_tts_connections,
            refused_by_limits=admission.refused,
            refused_at_connect=admission.refused_at_connect,
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
            process_request=self._gate.process_request,
            process_response=self._gate.process_response,
            create_connection=self._gate.connection_class,
            compression=None,
            # Frames over max_frame_bytes get error 2010 from the session; websockets'
            # own limit (close 1009, no event) is only a backstop against huge frames.
            max_size=max(4 * cfg.max_frame_bytes, 1 << 20),
            close_timeout=cfg.close_timeout_s,
            # From accept to the end of the opening handshake: a connection that sends
            # nothing, or dribbles its request, is dropped then (it is counted meanwhile).
            open_timeout=cfg.handshake_timeout_s,
            ping_interval=20.0,
            ping_timeout=20.0,
            max_queue=32,
        )
        # Kept: the listening sockets are gone once the server closes.
        self._port = int(self._ws_server.sockets[0].getsockname()[1])

    async def _handle(self, conn: ServerConnection) -> None:
        if not isinstance(conn, GatewayConnection) or conn.record is None or not conn.request:
            await conn.close(1011)  # cannot happen: the gate admitted it
            return
        record = conn.record
        conn.handled = True
        _log.info(
            "conn %d: open %s from %s:%s",
            record.conn_id,
            record.path,
            record.remote_host,
            record.remote_port,
        )
        route = conn.request.path.partition("?")[0]
        await self._routes[route](conn, record)

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
