"""The worker ⇄ job message codec: pure and synchronous (STYLE: codecs do no I/O).

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON: one object
with a ``"type"`` key. ``encode(message)`` gives the bytes to write; a ``Decoder`` is fed
whatever a read returned (any split, even one byte at a time) and returns the complete
messages. Garbage, an unknown type or a frame over ``max_frame`` raises ``IPCProtocolError``
and the decoder is then unusable (the stream has lost its framing: close it).

Worker → job: ``StartJob``, ``ParticipantDisconnected``, ``CloseRequest``.
Job → worker: ``Ready``, ``Heartbeat``, ``CallEvent``, ``JobReport``, ``JobExited``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

from voxlane.errors import VoxlaneError

HEADER = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024


class IPCProtocolError(VoxlaneError):
    """The byte stream is not a valid sequence of frames (the peer is broken)."""


@dataclass(frozen=True)
class Ready:
    """A (pre-warmed) job process is up and waits for ``StartJob``."""

    pid: int
    type: str = field(default="ready", init=False)


@dataclass(frozen=True)
class StartJob:
    """Run one call. ``spec`` is the call source's JSON-able job description."""

    job_id: str
    spec: dict[str, Any]
    type: str = field(default="start_job", init=False)


@dataclass(frozen=True)
class Heartbeat:
    """Sent from the job's event loop: a blocked loop stops sending them. Carries the job's
    count of open provider connections and of reconnects (resource ledger), for the
    worker's metrics."""

    seq: int
    open_connections: int = 0
    reconnects: dict[str, int] = field(default_factory=dict)
    """The job's provider reconnects so far, by ``kind:class`` (e.g. ``stt:idle``)."""
    type: str = field(default="heartbeat", init=False)


@dataclass(frozen=True)
class ParticipantDisconnected:
    """The caller left (e.g. SIP BYE received by the worker)."""

    reason: str = "hangup"
    type: str = field(default="participant_disconnected", init=False)


@dataclass(frozen=True)
class CloseRequest:
    """The worker wants the job to end now (forced close of its session)."""

    reason: str = "job_shutdown"
    type: str = field(default="close_request", init=False)


@dataclass(frozen=True)
class CallEvent:
    """Something the call's source must act on, from the job (SIP: ``"media_ready"`` with
    the job's RTP port, so the worker can answer 200 OK). ``data`` is JSON-able."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    type: str = field(default="call_event", init=False)


@dataclass(frozen=True)
class JobReport:
    """The DESIGN §8 session report, plus what the job adds (e.g. shutdown callbacks)."""

    report: dict[str, Any]
    type: str = field(default="job_report", init=False)


@dataclass(frozen=True)
class JobExited:
    """The job's last message: it is about to exit with ``code``."""

    code: int
    type: str = field(default="job_exited", init=False)


Message = (
    Ready
    | StartJob
    | Heartbeat
    | ParticipantDisconnected
    | CloseRequest
    | CallEvent
    | JobReport
    | JobExited
)
_TYPES: dict[str, type[Any]] = {
    "ready": Ready,
    "start_job": StartJob,
    "heartbeat": Heartbeat,
    "participant_disconnected": ParticipantDisconnected,
    "close_request": CloseRequest,
    "call_event": CallEvent,
    "job_report": JobReport,
    "job_exited": JobExited,
}


def encode(message: Message, *, max_frame: int = MAX_FRAME) -> bytes:
    """One frame. Raises ``IPCProtocolError`` if it would exceed ``max_frame``."""
    body = json.dumps(asdict(message), separators=(",", ":")).encode()
    if len(body) > max_frame:
        raise IPCProtocolError(f"{message.type} frame of {len(body)} bytes > {max_frame}")
    return HEADER.pack(len(body)) + body


def _parse(body: bytes) -> Message:
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IPCProtocolError(f"frame is not UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise IPCProtocolError(f"frame is not a JSON object: {type(obj).__name__}")
    kind = obj.pop("type", None)
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise IPCProtocolError(f"unknown message type {kind!r}")
    try:
        message: Message = cls(**obj)
    except TypeError as exc:
        raise IPCProtocolError(f"bad {kind} message: {exc}") from exc
    return message


class Decoder:
    """Incremental frame decoder. ``feed`` never blocks; see the module docstring."""

    def __init__(self, *, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame
        self._broken: IPCProtocolError | None = None

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes; return every message now complete (possibly none)."""
        if self._broken is not None:
            raise self._broken
        self._buf += data
        out: list[Message] = []
        try:
            while len(self._buf) >= HEADER.size:
                (size,) = HEADER.unpack_from(self._buf)
                if size > self._max:
                    raise IPCProtocolError(f"frame of {size} bytes > max {self._max}")
                if len(self._buf) < HEADER.size + size:
                    break
                body = bytes(self._buf[HEADER.size : HEADER.size + size])
                del self._buf[: HEADER.size + size]
                out.append(_parse(body))
        except IPCProtocolError as exc:
            self._broken = exc
            raise
        return out

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame (non-zero at EOF means the peer died mid-frame)."""
        return len(self._buf)
