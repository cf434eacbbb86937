"""Wire codec of the voxlane gateway protocol (STT endpoint ``/v1/stt``).

Pure and synchronous: no I/O, no asyncio, no clock. The server and the client provider
both import this module, so each message has exactly one encoder and one parser.

One websocket connection carries at most one recognition session:

* client -> server text frames (JSON objects with a ``type``): :class:`SessionCreate`,
  :class:`SessionFinalize`, :class:`SessionClose`;
* client -> server binary frames: PCM16 little-endian mono audio at the session's sample
  rate (checked with :func:`check_audio_frame`);
* server -> client text frames: the :data:`ServerEvent` dataclasses.

Errors::

    ProtocolViolation(ValueError)   bad input; carries an ErrorCode and a message

Parsers raise :class:`ProtocolViolation` and never anything else for bad input. Unknown
extra keys in an object are ignored (forward compatibility); a known key with a wrong type
is a violation. The full protocol, with examples, is in ``docs/gateway-protocol.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

__all__ = [
    "CLOSED_REASON",
    "DEFAULT_MAX_FRAME_BYTES",
    "ENCODING_PCM_S16LE",
    "STT_PATH",
    "SUPPORTED_LANGUAGES",
    "SUPPORTED_SAMPLE_RATES",
    "TTS_PATH",
    "ClientMessage",
    "EndOfSpeech",
    "ErrorCode",
    "ErrorEvent",
    "ErrorInfo",
    "FinalTranscript",
    "InterimTranscript",
    "ProtocolViolation",
    "ServerEvent",
    "SessionClose",
    "SessionClosed",
    "SessionCreate",
    "SessionCreated",
    "SessionFinalize",
    "SessionFinalized",
    "SessionSettings",
    "StartOfSpeech",
    "check_audio_frame",
    "close_frame",
    "encode_client_message",
    "encode_server_event",
    "error_event",
    "error_info",
    "parse_client_text",
    "parse_server_event",
    "shorten",
]

STT_PATH: Final = "/v1/stt"
#: The text-to-speech endpoint (codec in ``voxlane.gateway.tts_protocol``).
TTS_PATH: Final = "/v1/tts"
SUPPORTED_SAMPLE_RATES: Final = frozenset({8000, 16000, 24000, 48000})
ENCODING_PCM_S16LE: Final = "pcm_s16le"
SUPPORTED_LANGUAGES: Final = frozenset({"en"})
#: Default largest binary frame the server accepts (about 0.68 s at 48 kHz).
DEFAULT_MAX_FRAME_BYTES: Final = 65536
#: Longest phrase list a session may ask for, and longest phrase (characters).
MAX_PHRASES: Final = 200
MAX_PHRASE_CHARS: Final = 200


class ErrorCode(IntEnum):
    """Every code the server sends in an ``error`` event.

    *Fatal* codes end the session: the server sends the error, then closes the socket with
    the close code in :func:`error_info`. Non-fatal codes reject one message; the session
    (if any) goes on. *Retryable* means a new connection doing the same thing may succeed.
    """

    #: Text frame is not valid JSON or not a JSON object. Non-fatal, not retryable.
    MALFORMED_JSON = 2001
    #: ``type`` missing or unknown. Non-fatal, not retryable.
    UNKNOWN_MESSAGE_TYPE = 2002
    #: A known message with a missing or wrongly typed field. Non-fatal, not retryable.
    INVALID_MESSAGE = 2003
    #: Audio or ``session.finalize`` before ``session.create`` (``session.close`` then is
    #: answered with ``session.closed``).
    #: Non-fatal (the frame is dropped), not retryable.
    SESSION_NOT_CREATED = 2004
    #: ``session.create`` settings not supported (sample rate, encoding, language,
    #: phrases). Non-fatal: no session is created, the client may send a corrected
    #: ``session.create``. Not retryable as is.
    UNSUPPORTED_SETTINGS = 2005
    #: A second ``session.create`` on a connection. Non-fatal (the first session goes on),
    #: not retryable.
    SESSION_ALREADY_CREATED = 2006
    #: No audio for ``idle_timeout`` seconds. Fatal (close 1000), retryable: a new
    #: connection is a clean start.
    IDLE_TIMEOUT = 2007
    #: The server already hosts ``max_sessions`` sessions. Fatal (close 1000), retryable
    #: after a back-off.
    SERVER_BUSY = 2008
    #: Binary frame with an odd number of bytes (not whole PCM16 samples). Non-fatal
    #: (the frame is dropped), not retryable.
    INVALID_AUDIO_FRAME = 2009
    #: Binary or text frame larger than the server's ``max_frame_bytes``. Fatal (close
    #: 1009), not retryable.
    FRAME_TOO_LARGE = 2010
    #: The speech engine failed. Fatal (close 1011), retryable.
    ENGINE_ERROR = 2011
    #: The engine fell too far behind real time (the bounded audio queue stayed full past
    #: its deadline). Fatal (close 1013), retryable after a back-off.
    OVERLOADED = 2012
    #: Unexpected server fault. Fatal (close 1011), retryable.
    INTERNAL_ERROR = 2013
    #: The client did not read: one frame could not be written within the server's send
    #: timeout. Fatal (close 1008 "client too slow"), retryable by a client that reads.
    SLOW_CONSUMER = 2014


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Static facts about one :class:`ErrorCode`."""

    fatal: bool
    retryable: bool
    #: Websocket close code the server uses after a fatal error (0 = does not close).
    close_code: int
    message: str


_ERROR_INFO: Final[dict[ErrorCode, ErrorInfo]] = {
    ErrorCode.MALFORMED_JSON: ErrorInfo(False, False, 0, "malformed JSON"),
    ErrorCode.UNKNOWN_MESSAGE_TYPE: ErrorInfo(False, False, 0, "unknown message type"),
    ErrorCode.INVALID_MESSAGE: ErrorInfo(False, False, 0, "invalid message"),
    ErrorCode.SESSION_NOT_CREATED: ErrorInfo(False, False, 0, "no session: send session.create"),
    ErrorCode.UNSUPPORTED_SETTINGS: ErrorInfo(False, False, 0, "unsupported settings"),
    ErrorCode.SESSION_ALREADY_CREATED: ErrorInfo(False, False, 0, "session already created"),
    ErrorCode.IDLE_TIMEOUT: ErrorInfo(True, True, 1000, "session closed due to inactivity"),
    ErrorCode.SERVER_BUSY: ErrorInfo(True, True, 1000, "server busy: max sessions reached"),
    ErrorCode.INVALID_AUDIO_FRAME: ErrorInfo(False, False, 0, "odd-length audio frame"),
    ErrorCode.FRAME_TOO_LARGE: ErrorInfo(True, False, 1009, "frame too large"),
    ErrorCode.ENGINE_ERROR: ErrorInfo(True, True, 1011, "speech engine failed"),
    ErrorCode.OVERLOADED: ErrorInfo(True, True, 1013, "engine overloaded"),
    ErrorCode.INTERNAL_ERROR: ErrorInfo(True, True, 1011, "internal server error"),
    ErrorCode.SLOW_CONSUMER: ErrorInfo(True, True, 1008, "client too slow"),
}

#: The close reason of a clean end (``session.closed``, close 1000).
CLOSED_REASON: Final = "session closed"


def close_frame(code: ErrorCode | None) -> tuple[int, str]:
    """The websocket close code and reason the server ends a connection with: after a
    fatal ``code``, its close code and default message; after a clean end (None), 1000
    ``"session closed"``."""
    if code is None:
        return 1000, CLOSED_REASON
    info = _ERROR_INFO[code]
    return info.close_code or 1000, info.message


def shorten(value: object, limit: int = 64) -> str:
    """``repr(value)`` cut to ``limit`` characters: client input echoed in an error
    message stays short whatever the client sent."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_info(code: ErrorCode) -> ErrorInfo:
    """Return whether ``code`` is fatal, retryable, its close code and default message."""
    return _ERROR_INFO[code]


class ProtocolViolation(ValueError):
    """Bad input on the wire. ``code`` is what the server answers with."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{int(code)}: {message}")
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- client side


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    """Settings of one recognition session (the ``settings`` object of session.create).

    ``phrases``, when given, restricts recognition to exactly those phrases on engines that
    support a grammar (pocketsphinx); other engines ignore it.
    """

    sample_rate: int = 16000
    encoding: str = ENCODING_PCM_S16LE
    language: str = "en"
    phrases: tuple[str, ...] | None = None

    def validate(self) -> None:
        """Raise :class:`ProtocolViolation` (UNSUPPORTED_SETTINGS) unless supported."""
        bad = ErrorCode.UNSUPPORTED_SETTINGS
        if self.sample_rate not in SUPPORTED_SAMPLE_RATES:
            rates = sorted(SUPPORTED_SAMPLE_RATES)
            raise ProtocolViolation(bad, f"sample_rate {shorten(self.sample_rate)} not in {rates}")
        if self.encoding != ENCODING_PCM_S16LE:
            raise ProtocolViolation(bad, f"encoding {shorten(self.encoding)} is not 'pcm_s16le'")
        if self.language not in SUPPORTED_LANGUAGES:
            raise ProtocolViolation(bad, f"language {shorten(self.language)} is not 'en'")
        if self.phrases is not None:
            if not 0 < len(self.phrases) <= MAX_PHRASES:
                raise ProtocolViolation(bad, f"phrases must hold 1..{MAX_PHRASES} items")
            for p in self.phrases:
                if not p.strip() or len(p) > MAX_PHRASE_CHARS:
                    raise ProtocolViolation(bad, "each phrase must be 1..200 non-blank chars")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sample_rate": self.sample_rate,
            "encoding": self.encoding,
            "language": self.language,
        }
        if self.phrases is not None:
            out["phrases"] = list(self.phrases)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCreate:
    """``{"type":"session.create","settings":{...}}``: opens the session."""

    settings: SessionSettings = field(default_factory=SessionSettings)
    type: str = field(default="session.create", init=False)


@dataclass(frozen=True, slots=True)
class SessionFinalize:
    """``{"type":"session.finalize"}``: flush pending speech as a final transcript."""

    type: str = field(default="session.finalize", init=False)


@dataclass(frozen=True, slots=True)
class SessionClose:
    """``{"type":"session.close"}``: end the session; the server answers session.closed."""

    type: str = field(default="session.close", init=False)


ClientMessage = SessionCreate | SessionFinalize | SessionClose


def _load_object(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolViolation(ErrorCode.MALFORMED_JSON, f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolViolation(ErrorCode.MALFORMED_JSON, "a message must be a JSON object")
    return obj


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], *, where: str) -> Any:
    if key not in obj:
        raise ProtocolViolation(ErrorCode.INVALID_MESSAGE, f"{where}: missing {key!r}")
    value = obj[key]
    # bool is an int subclass; a JSON true is never a number here.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ProtocolViolation(ErrorCode.INVALID_MESSAGE, f"{where}: {key!r} has wrong type")
    if not isinstance(value, kind):
        raise ProtocolViolation(ErrorCode.INVALID_MESSAGE, f"{where}: {key!r} has wrong type")
    return value


def _parse_settings(raw: Any) -> SessionSettings:
    if not isinstance(raw, dict):
        raise ProtocolViolation(
            ErrorCode.INVALID_MESSAGE, "session.create: 'settings' must be an object"
        )
    where = "settings"
    kwargs: dict[str, Any] = {}
    for key, kind in (("sample_rate", int), ("encoding", str), ("language", str)):
        if key in raw:
            kwargs[key] = _field(raw, key, kind, where=where)
    if raw.get("phrases") is not None:
        phrases = _field(raw, "phrases", list, where=where)
        if not all(isinstance(p, str) for p in phrases):
            raise ProtocolViolation(ErrorCode.INVALID_MESSAGE, "settings: phrases must be strings")
        kwargs["phrases"] = tuple(phrases)
    settings = SessionSettings(**kwargs)
    settings.validate()
    return settings


def parse_client_text(text: str) -> ClientMessage:
    """Parse one client text frame.

    Raises :class:`ProtocolViolation` with MALFORMED_JSON, UNKNOWN_MESSAGE_TYPE,
    INVALID_MESSAGE or UNSUPPORTED_SETTINGS. Missing settings keys take their defaults.
    """
    obj = _load_object(text)
    kind = obj.get("type")
    if kind == "session.create":
        return SessionCreate(settings=_parse_settings(obj.get("settings", {})))
    if kind == "session.finalize":
        return SessionFinalize()
    if kind == "session.close":
        return SessionClose()
    raise ProtocolViolation(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"unknown message type {shorten(kind)}")


def encode_client_message(msg: ClientMessage) -> str:
    """Encode a client message as one JSON text frame."""
    if isinstance(msg, SessionCreate):
        return json.dumps({"type": msg.type, "settings": msg.settings.to_json()})
    return json.dumps({"type": msg.type})


def check_audio_frame(data: bytes, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
    """Raise :class:`ProtocolViolation` unless ``data`` is a valid PCM16 frame.

    FRAME_TOO_LARGE (fatal) past ``max_frame_bytes``; INVALID_AUDIO_FRAME for an odd length.
    An empty frame is valid (and carries no audio).
    """
    if len(data) > max_frame_bytes:
        raise ProtocolViolation(
            ErrorCode.FRAME_TOO_LARGE, f"frame of {len(data)} bytes > {max_frame_bytes}"
        )
    if len(data) % 2:
        raise ProtocolViolation(
            ErrorCode.INVALID_AUDIO_FRAME, f"frame of {len(data)} bytes is not whole samples"
        )


# --------------------------------------------------------------------------- server side


@dataclass(frozen=True, slots=True)
class SessionCreated:
    session_id: str
    type: str = field(default="session.created", init=False)


@dataclass(frozen=True, slots=True)
class StartOfSpeech:
    type: str = field(default="start_of_speech", init=False)


@dataclass(frozen=True, slots=True)
class InterimTranscript:
    """Best guess so far for the utterance in progress; replaced by later interims."""

    text: str
    type: str = field(default="interim_transcript", init=False)


@dataclass(frozen=True, slots=True)
class FinalTranscript:
    """Final text of one utterance; ``start_s``/``end_s`` are seconds of session audio."""

    text: str
    start_s: float
    end_s: float
    type: str = field(default="final_transcript", init=False)


@dataclass(frozen=True, slots=True)
class EndOfSpeech:
    type: str = field(default="end_of_speech", init=False)


@dataclass(frozen=True, slots=True)
class SessionFinalized:
    type: str = field(default="session.finalized", init=False)


@dataclass(frozen=True, slots=True)
class SessionClosed:
    type: str = field(default="session.closed", init=False)


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    code: int
    message: str
    retryable: bool
    type: str = field(default="error", init=False)


ServerEvent = (
    SessionCreated
    | StartOfSpeech
    | InterimTranscript
    | FinalTranscript
    | EndOfSpeech
    | SessionFinalized
    | SessionClosed
    | ErrorEvent
)


def error_event(code: ErrorCode, message: str | None = None) -> ErrorEvent:
    """Build the error event for ``code`` with its documented ``retryable`` flag."""
    info = _ERROR_INFO[code]
    return ErrorEvent(int(code), message or info.message, info.retryable)


def encode_server_event(evt: ServerEvent) -> str:
    """Encode a server event as one JSON text frame."""
    if isinstance(evt, SessionCreated):
        obj: dict[str, Any] = {"type": evt.type, "session_id": evt.session_id}
    elif isinstance(evt, InterimTranscript):
        obj = {"type": evt.type, "text": evt.text}
    elif isinstance(evt, FinalTranscript):
        obj = {
            "type": evt.type,
            "text": evt.text,
            "start_s": round(evt.start_s, 3),
            "end_s": round(evt.end_s, 3),
        }
    elif isinstance(evt, ErrorEvent):
        obj = {
            "type": evt.type,
            "code": evt.code,
            "message": evt.message,
            "retryable": evt.retryable,
        }
    else:
        obj = {"type": evt.type}
    return json.dumps(obj)


_SIMPLE_EVENTS: Final[dict[str, ServerEvent]] = {
    "start_of_speech": StartOfSpeech(),
    "end_of_speech": EndOfSpeech(),
    "session.finalized": SessionFinalized(),
    "session.closed": SessionClosed(),
}


def parse_server_event(text: str) -> ServerEvent:
    """Parse one server text frame (client side).

    Raises :class:`ProtocolViolation` (MALFORMED_JSON, UNKNOWN_MESSAGE_TYPE or
    INVALID_MESSAGE) when the server sent something this version does not understand.
    """
    obj = _load_object(text)
    kind = obj.get("type")
    where = str(kind)
    if isinstance(kind, str) and kind in _SIMPLE_EVENTS:
        return _SIMPLE_EVENTS[kind]
    if kind == "session.created":
        return SessionCreated(_field(obj, "session_id", str, where=where))
    if kind == "interim_transcript":
        return InterimTranscript(_field(obj, "text", str, where=where))
    if kind == "final_transcript":
        return FinalTranscript(
            _field(obj, "text", str, where=where),
            float(_field(obj, "start_s", (int, float), where=where)),
            float(_field(obj, "end_s", (int, float), where=where)),
        )
    if kind == "error":
        return ErrorEvent(
            _field(obj, "code", int, where=where),
            _field(obj, "message", str, where=where),
            _field(obj, "retryable", bool, where=where),
        )
    raise ProtocolViolation(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"unknown event type {kind!r}")
