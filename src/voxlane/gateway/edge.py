"""The gateway's HTTP edge: what each opening handshake gets before any session exists.

:class:`HandshakeGate` supplies the websockets server's ``process_request`` and
``process_response``. In order, a handshake gets:

====================================================  =====  ==========================
condition                                             HTTP   log (``voxlane.gateway``)
====================================================  =====  ==========================
server shutting down (or a refusing fault plan)       503    INFO
client address out of failed-handshake tokens         429    WARNING once, then DEBUG
unknown path                                          404    INFO (costs a token)
more than one ``Authorization`` header                400    INFO (costs a token)
missing, malformed or wrong ``Authorization: Bearer``  401    INFO (costs a token)
``max_connections_per_client`` open from the address  429    WARNING once, then DEBUG
``max_connections`` open, or ``max_tts_sessions``     503    WARNING once, then DEBUG
====================================================  =====  ==========================

429 and 503 carry ``Retry-After`` (seconds). Every log line is one line, no traceback,
and never shows a secret: the path is logged only if it is a known route (else
``<other path>``) and a query string only as ``?<redacted>``; header values are never
logged. The decisions are :class:`voxlane.gateway.admission.Admission`'s (pure).

Each admitted connection holds an admission :class:`~voxlane.gateway.admission.Ticket`
until its TCP connection is gone: :class:`GatewayConnection` reports that from
``connection_lost``, which asyncio calls exactly once per connection whether or not the
handshake finished or a handler ran — the one place a ticket is sure to be returned.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from voxlane.gateway.admission import Admission, Refused, Ticket
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
    "throttled": "too many failed handshakes",
    "client_limit": "too many connections from this client",
    "server_full": "too many connections",
    "tts_full": "too many /v1/tts sessions",
}


class HandshakeGate:
    """Checks each opening handshake; counts what reached it (``connections_seen``)."""

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
        self._expected = f"Bearer {api_key}".encode("latin-1", "replace")
        self._routes = routes
        self._tts_route = tts_route
        self._admission = admission
        self._now = now
        self._refusing = refusing
        self._on_record = on_record
        self.connections_seen = 0

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """websockets' ``process_request``: None lets the handshake go on (admitted, a
        ticket held by the connection); a Response refuses it."""
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
        verdict = self._check(host, request, now)
        if isinstance(verdict, Ticket):
            record.http_status = int(HTTPStatus.SWITCHING_PROTOCOLS)
            conn.record, conn.ticket = record, verdict
            conn.on_lost = self._lost
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
        headers, say): record the real status and return the ticket now."""
        assert isinstance(conn, GatewayConnection)
        record = conn.record
        if record is None or response.status_code == HTTPStatus.SWITCHING_PROTOCOLS:
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
        self._release(conn)

    # ---------------------------------------------------------------- internals

    def _check(self, host: str, request: Request, now: float) -> Ticket | _Refusal:
        if self._refusing():
            return _Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down", 1)
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
        admitted = self._admission.admit(host, tts=route == self._tts_route)
        if isinstance(admitted, Refused):
            return self._refused(admitted)
        return admitted

    @staticmethod
    def _refused(refused: Refused) -> _Refusal:
        level = logging.WARNING if refused.first else logging.DEBUG
        return _Refusal(
            HTTPStatus(refused.refusal.status),
            _WHY[refused.refusal.value],
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
