"""The server's observable connection log: one record per HTTP request that reached it.

Records are mutable while their connection lives and only ever appended to; tests read
``GatewayServer.connection_log`` (a copy of the list) to assert what the server saw. Times
are the event loop's monotonic clock (``loop.time()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAX_LISTED", "ConnectionRecord"]

#: Entries kept in each list of a record: a client sending a million bad frames must not
#: grow the server's memory (later ones are only counted, in ``*_dropped``).
MAX_LISTED = 1000


@dataclass(slots=True)
class ConnectionRecord:
    """What one connection did, as the server saw it."""

    conn_id: int
    remote_port: int | None
    #: The request path as logged: a known route (``/v1/stt``, ``/v1/tts``) or
    #: ``"<other path>"``, and ``"?<redacted>"`` when the request had a query string (it may
    #: carry a key): what a client sends outside the ``Authorization`` header is never kept.
    path: str
    opened_at: float
    remote_host: str | None = None
    #: HTTP status of the handshake: 101 (websocket), 400, 401, 404, 429 or 503.
    http_status: int = 0
    closed_at: float | None = None
    session_ids: list[str] = field(default_factory=list)
    #: Client text message types in arrival order (``"session.create"``, ...; ``"invalid"``
    #: for text that did not parse).
    messages: list[str] = field(default_factory=list)
    audio_frames: int = 0
    audio_bytes: int = 0
    #: Error codes the server sent on this connection.
    errors_sent: list[int] = field(default_factory=list)
    #: Why the connection ended (``client_close``, ``idle_timeout``, ``peer_gone``, ...).
    close_reason: str | None = None
    close_code: int | None = None
    messages_dropped: int = 0
    errors_dropped: int = 0

    def note_message(self, label: str) -> None:
        """Record one client text message (bounded: see :data:`MAX_LISTED`)."""
        if len(self.messages) < MAX_LISTED:
            self.messages.append(label)
        else:
            self.messages_dropped += 1

    def note_error(self, code: int) -> None:
        """Record one error code sent (bounded: see :data:`MAX_LISTED`)."""
        if len(self.errors_sent) < MAX_LISTED:
            self.errors_sent.append(int(code))
        else:
            self.errors_dropped += 1
