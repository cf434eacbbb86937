"""Pure decisions of one ``/v1/stt`` connection: (state, input) -> :class:`Decision`.

No I/O, no asyncio, no clock: :mod:`voxlane.gateway.stt_session` feeds each client frame
to :func:`decide_text` / :func:`decide_audio` and carries out the decision. The states
and their legal transitions are data (``TRANSITIONS``)::

    AWAITING_CREATE --session created--> ACTIVE
    AWAITING_CREATE / ACTIVE --close (any reason)--> CLOSING --> CLOSED
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from voxlane.gateway import protocol as p

__all__ = [
    "BUSY",
    "CLIENT_CLOSE",
    "DRAIN_AND_CLOSE",
    "ENGINE_FAILED",
    "FINALIZE",
    "IDLE",
    "INTERNAL",
    "OVERLOADED",
    "PEER_GONE",
    "SHUTDOWN",
    "SLOW_CONSUMER",
    "TRANSITIONS",
    "CloseOrder",
    "Decision",
    "IllegalTransition",
    "State",
    "check_transition",
    "decide_audio",
    "decide_text",
]


class State(enum.Enum):
    AWAITING_CREATE = "awaiting_create"
    ACTIVE = "active"
    CLOSING = "closing"
    CLOSED = "closed"


TRANSITIONS: Final[dict[State, frozenset[State]]] = {
    State.AWAITING_CREATE: frozenset({State.ACTIVE, State.CLOSING}),
    State.ACTIVE: frozenset({State.CLOSING}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A state change the table does not allow (a bug in the caller)."""


def check_transition(current: State, new: State) -> State:
    """Return ``new`` if ``current -> new`` is legal, else raise IllegalTransition."""
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"illegal transition {current.name} -> {new.name}")
    return new


#: Items of the engine queue besides audio bytes.
FINALIZE: Final = "finalize"
DRAIN_AND_CLOSE: Final = "close"


@dataclass(frozen=True, slots=True)
class CloseOrder:
    """End the connection. ``error`` None: a clean end (``session.closed``, close 1000)."""

    reason: str
    error: p.ErrorCode | None = None
    message: str | None = None


CLIENT_CLOSE: Final = CloseOrder("client_close")
SHUTDOWN: Final = CloseOrder("server_shutdown")
PEER_GONE: Final = CloseOrder("peer_gone")
IDLE: Final = CloseOrder("idle_timeout", p.ErrorCode.IDLE_TIMEOUT)
BUSY: Final = CloseOrder("server_busy", p.ErrorCode.SERVER_BUSY)
ENGINE_FAILED: Final = CloseOrder("engine_error", p.ErrorCode.ENGINE_ERROR)
OVERLOADED: Final = CloseOrder("overloaded", p.ErrorCode.OVERLOADED)
INTERNAL: Final = CloseOrder("internal_error", p.ErrorCode.INTERNAL_ERROR)
#: A send did not finish within send_timeout_s: the client is not reading. A transport
#: condition (error 2014, close 1008), never an engine failure. Both endpoints use it.
SLOW_CONSUMER: Final = CloseOrder("slow_consumer", p.ErrorCode.SLOW_CONSUMER)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one client frame; the caller applies the fields in this order.

    * ``reply``: send this non-fatal error (the connection goes on);
    * ``create``: start a session with these settings (needs a max_sessions slot: none
      free means :data:`BUSY`);
    * ``restart_idle``: restart the idle timer;
    * ``enqueue``: put audio bytes, :data:`FINALIZE` or :data:`DRAIN_AND_CLOSE` on the
      session's engine queue;
    * ``close``: begin the connection's one close.
    """

    label: str = ""
    reply: p.ErrorEvent | None = None
    create: p.SessionSettings | None = None
    restart_idle: bool = False
    enqueue: bytes | str | None = None
    close: CloseOrder | None = None


def _error(label: str, code: p.ErrorCode, message: str | None = None) -> Decision:
    return Decision(label=label, reply=p.error_event(code, message))


def _open(state: State) -> bool:
    return state in (State.AWAITING_CREATE, State.ACTIVE)


def decide_text(state: State, text: str, *, max_frame_bytes: int) -> Decision:
    """Decide what a client text frame does. ``label`` is what the connection log records
    (the message type, or ``"invalid"``)."""
    if not _open(state):
        return Decision(label="ignored")
    # Cheap test first: a str has at most 4 bytes per character.
    if len(text) > max_frame_bytes // 4 and len(text.encode()) > max_frame_bytes:
        return Decision(
            label="invalid",
            close=CloseOrder("frame_too_large", p.ErrorCode.FRAME_TOO_LARGE),
        )
    try:
        msg = p.parse_client_text(text)
    except p.ProtocolViolation as exc:
        return _error("invalid", exc.code, exc.message)
    if isinstance(msg, p.SessionCreate):
        if state is State.ACTIVE:
            return _error(msg.type, p.ErrorCode.SESSION_ALREADY_CREATED)
        return Decision(label=msg.type, create=msg.settings)
    if isinstance(msg, p.SessionFinalize):
        if state is not State.ACTIVE:
            return _error(msg.type, p.ErrorCode.SESSION_NOT_CREATED)
        return Decision(label=msg.type, enqueue=FINALIZE)
    # session.close. With a session: the worker first drains what was queued (a finalize
    # sent just before close still gets its transcript), bounded by the close budget.
    if state is State.ACTIVE:
        return Decision(label=msg.type, enqueue=DRAIN_AND_CLOSE, close=CLIENT_CLOSE)
    return Decision(label=msg.type, close=CLIENT_CLOSE)


def decide_audio(state: State, data: bytes, *, max_frame_bytes: int) -> Decision:
    """Decide what a client binary (audio) frame does."""
    if not _open(state):
        return Decision(label="audio")
    try:
        p.check_audio_frame(data, max_frame_bytes=max_frame_bytes)
    except p.ProtocolViolation as exc:
        if p.error_info(exc.code).fatal:
            return Decision(
                label="audio", close=CloseOrder("frame_too_large", exc.code, exc.message)
            )
        return _error("audio", exc.code, exc.message)
    if state is not State.ACTIVE:
        return _error("audio", p.ErrorCode.SESSION_NOT_CREATED)
    # An empty frame is valid audio: it proves the client is alive (restarts the timer).
    return Decision(label="audio", restart_idle=True, enqueue=data or None)
