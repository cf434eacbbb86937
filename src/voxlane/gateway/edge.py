"""The gateway's edge: what each TCP connection and each opening handshake gets before
any session exists.

Every TCP connection is counted from the moment it is accepted (``connection_made``),
before a byte is read: over ``max_connections_per_client`` open from its address, or
``max_connections`` open in all, it is closed at once (``transport.abort()``, no HTTP
answer; WARNING once per episode, then DEBUG). A connection that is let in must finish
its opening handshake within the handshake timeout (``GatewayConfig.handshake_timeout_s``)
or it is dropped, so sockets that send nothing, or dribble their request, hold their
place for a bounded time and are always counted.

:class:`HandshakeGate` also supplies the websockets server's ``process_request`` and
``process_response``. In order, a request gets:

====================================================  =====  ==========================
condition                                             HTTP   log (``voxlane.gateway``)
====================================================  =====  ==========================
server shutting down (or a refusing fault plan)       503    INFO
client address out of failed-handshake tokens         429    WARNING once, then DEBUG
unknown path                                          404    INFO (costs a token)
more than one ``Authorization`` header                400    INFO (costs a token)
missing, malformed or wrong ``Authorization: Bearer``  401    INFO (costs a token)
``max_tts_sessions`` open (``/v1/tts`` only)          503    WARNING once, then DEBUG
====================================================  =====  ==========================

429 and 503 carry ``Retry-After`` (seconds). Every log line is one line, no traceback,
and never shows a secret: the path is logged only if it is a known route (else
``<other path>``) and a query string only as ``?<redacted>``; header values are never
logged. The decisions are :class:`voxlane.gateway.admission.Admission`'s (pure).

Each accepted connection holds an admission :class:`~voxlane.gateway.admission.Ticket`
until its TCP connection is gone: :class:`GatewayConnection` reports that from
``connection_lost``, which asyncio calls exactly once per connection whether or not the
handshake finished or a handler ran — the one place a ticket is sure to be returned.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import ClassVar

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from voxlane.gateway.admission import Admission, Refusal, Refused, Ticket
from voxlane.gateway.connlog import ConnectionRecord

__all__ = ["GatewayConnection", "HandshakeGate", "shown_path"]

_log = logging.getLogger("voxlane.gateway")

OTHER_PATH = "<other path>"
REDACTED_QUERY = "?<redacted>"


class GatewayConnection(ServerConnection):
    """A server connection that carries its gateway record and admission ticket, and
    calls ``on_lost`` once its TCP connection is gone."""

    record: ConnectionRecord | None = None
    ticket: Ticket | None = None
    on_lost: Callable[[GatewayConnection], None] | None = None
    #: Set by the server when its handler starts (from then on the handler owns the record).
    handled: bool = False
    #: The gate that counts this connection (see :attr:`HandshakeGate.connection_class`).
    gate: ClassVar[HandshakeGate | None] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # first: websockets' state must exist to close
        if self.gate is not None:
            self.gate.connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            callback, self.on_lost = self.on_lost, None
            if callback is not None:
                callback(self)


def shown_path(target: str, routes: frozenset[str]) -> str:
    """The request target as it may be logged (see the module docstring)."""
    path, query, _ = target.partition("?")
    return (path if path in routes else OTHER_PATH) + (REDACTED_QUERY if query else "")


@dataclass(frozen=True, slots=True)
class _Refusal:
    status: HTTPStatus
    why: str
    retry_after_s: int | None = None
    level: int = logging.INFO
    #: A failed handshake: costs one of the client's tokens.
    failure: bool = False


_WHY = {
    Refusal.THROTTLED: "too many failed handshakes",
    Refusal.CLIENT_LIMIT: "too many connections from this client",
    Refusal.SERVER_FULL: "too many connections",
    Refusal.TTS_FULL: "too many /v1/tts sessions",
}


class HandshakeGate:
    """Counts every TCP connection (:meth:`connected`) and checks each opening handshake;
    counts the requests that reached it (``connections_seen``)."""

    def __init__(
        self,
        *,
        api_key: str,
        routes: frozenset[str],
        tts_route: str,
        admission: Admission,
        now: Callable[[], float],
        refusing: Callable[[], bool],
        on_record: Callable[[ConnectionRecord], None],
    ) -> None:
        # Strict: a key GatewayConfig did not check must fail here, never turn into "?"s
        # that a header of question marks would match.
        self._expected = f"Bearer {api_key}".encode("ascii")
        self._routes = routes
        self._tts_route = tts_route
        self._admission = admission
        self._now = now
        self._refusing = refusing
        self._on_record = on_record
        self.connections_seen = 0

        class _Counted(GatewayConnection):
            gate = self

        #: What the websockets server creates for each accepted socket
        #: (``create_connection``): a :class:`GatewayConnection` counted by this gate.
        self.connection_class: type[GatewayConnection] = _Counted

    def connected(self, conn: GatewayConnection) -> None:
        """A TCP connection was accepted (nothing read yet): count it, or close it at once
        when a connection cap is reached."""
        remote = conn.remote_address
        host = str(remote[0]) if remote else "?"
        verdict = self._admission.connect(host)
        if isinstance(verdict, Ticket):
            conn.ticket = verdict
            conn.on_lost = self._lost
            return
        _log.log(
            logging.WARNING if verdict.first else logging.DEBUG,
            "refused a connection from %s: %s (closed at accept)",
            host,
            _WHY[verdict.refusal],
        )
        conn.transport.abort()

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """websockets' ``process_request``: None lets the handshake go on; a Response
        refuses it (the connection keeps its ticket until its TCP connection is gone)."""
        assert isinstance(conn, GatewayConnection)
        now = self._now()
        remote = conn.remote_address
        host = str(remote[0]) if remote else "?"
        self.connections_seen += 1
        record = ConnectionRecord(
            conn_id=self.connections_seen,
            remote_port=int(remote[1]) if remote else None,
            remote_host=host,
            path=shown_path(request.path, self._routes),
            opened_at=now,
        )
        self._on_record(record)
        conn.record = record
        verdict = self._check(conn.ticket, host, request, now)
        if verdict is None:
            record.http_status = int(HTTPStatus.SWITCHING_PROTOCOLS)
            return None
        if verdict.failure:
            self._admission.failed(host, now)
        record.http_status = int(verdict.status)
        record.closed_at = now
        record.close_reason = f"http_{int(verdict.status)}"
        _log.log(
            verdict.level,
            "conn %d: refused %d %s from %s: %s",
            record.conn_id,
            int(verdict.status),
            record.path,
            host,
            verdict.why,
        )
        response = conn.respond(verdict.status, f"{verdict.status.phrase}\n")
        if verdict.retry_after_s is not None:
            response.headers["Retry-After"] = str(verdict.retry_after_s)
        return response

    def process_response(
        self, conn: ServerConnection, request: Request, response: Response
    ) -> None:
        """A request we let through can still fail the websocket handshake (bad upgrade
        headers, say): record the real status (the ticket goes back with the TCP
        connection, closed right after)."""
        assert isinstance(conn, GatewayConnection)
        record = conn.record
        if (
            record is None
            or record.http_status != HTTPStatus.SWITCHING_PROTOCOLS
            or response.status_code == HTTPStatus.SWITCHING_PROTOCOLS
        ):
            return
        record.http_status = response.status_code
        record.closed_at = self._now()
        record.close_reason = f"http_{response.status_code}"
        _log.info(
            "conn %d: refused %d %s: bad websocket handshake",
            record.conn_id,
            response.status_code,
            record.path,
        )

    # ---------------------------------------------------------------- internals

    def _check(
        self, ticket: Ticket | None, host: str, request: Request, now: float
    ) -> _Refusal | None:
        if self._refusing():
            return _Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down", 1)
        if ticket is None:  # cannot happen: a connection refused at accept reads nothing
            return _Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "connection not counted", 1)
        throttled = self._admission.throttled(host, now)
        if throttled is not None:
            return self._refused(throttled)
        route = request.path.partition("?")[0]
        if route not in self._routes:
            return _Refusal(HTTPStatus.NOT_FOUND, "unknown path", failure=True)
        values = request.headers.get_all("Authorization")
        if len(values) > 1:
            why = f"{len(values)} Authorization headers"
            return _Refusal(HTTPStatus.BAD_REQUEST, why, failure=True)
        # Headers arrive decoded as ISO-8859-1: encoding back gives the bytes sent.
        given = values[0].encode("latin-1", "replace") if values else b""
        if not hmac.compare_digest(given, self._expected):
            why = "wrong key" if given.startswith(b"Bearer ") else "no bearer key"
            return _Refusal(HTTPStatus.UNAUTHORIZED, why, failure=True)
        if route == self._tts_route:
            refused = self._admission.admit_tts(ticket)
            if refused is not None:
                return self._refused(refused)
        return None

    @staticmethod
    def _refused(refused: Refused) -> _Refusal:
        level = logging.WARNING if refused.first else logging.DEBUG
        status = refused.refusal.status
        assert status is not None  # only HTTP-stage refusals reach here
        return _Refusal(
            HTTPStatus(status),
            _WHY[refused.refusal],
            refused.retry_after_s,
            level,
        )

    def _release(self, conn: GatewayConnection) -> None:
        ticket, conn.ticket = conn.ticket, None
        if ticket is not None:
            self._admission.release(ticket)

    def _lost(self, conn: GatewayConnection) -> None:
        self._release(conn)
        record = conn.record
        if record is not None and not conn.handled and record.closed_at is None:
            # Admitted, but no handler ran: the handshake never completed.
            record.closed_at = self._now()
            record.close_reason = "handshake_incomplete"
