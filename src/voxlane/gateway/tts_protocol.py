"""Wire codec of the gateway's text-to-speech endpoint ``/v1/tts`` (pure, synchronous).

One connection carries a sequence of synthesis requests, spoken in order:

* client → server text frames: ``{"type":"synthesize","text":…,"voice":…,"sample_rate":…,
  "id":…}`` (``voice`` defaults to ``"joe"``, ``sample_rate`` to 16000, ``id`` to a
  server-assigned number; a client's ``id`` is 1 to 64 printable ASCII characters, as it
  is echoed in every event and may be logged), ``{"type":"cancel"}`` (stop the current
  request at once and drop the queued ones), ``{"type":"session.close"}``;
* server → client: ``{"type":"synthesis.started","id":…,"sample_rate":…}``, then binary
  PCM16 LE mono frames of that request, then ``{"type":"synthesis.done","id":…}``; after a
  cancel, ``{"type":"synthesis.cancelled","id":…}`` (binary frames received before it belong
  to cancelled requests); ``session.closed``; ``error`` events with the codes of
  :class:`voxlane.gateway.protocol.ErrorCode`.

Errors are :class:`~voxlane.gateway.protocol.ProtocolViolation` with the STT endpoint's
codes (2001 malformed JSON, 2002 unknown type, 2003 invalid message, 2005 unsupported
voice or rate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from voxlane.gateway import protocol as p

VOICES: Final = ("joe", "espeak")
MAX_TEXT_CHARS: Final = 2000
#: A client's request ``id``: 1 to this many printable ASCII characters (space to ``~``).
MAX_ID_CHARS: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Synthesize:
    text: str
    voice: str = "joe"
    sample_rate: int = 16000
    id: str | None = None
    type: str = field(default="synthesize", init=False)


@dataclass(frozen=True, slots=True)
class Cancel:
    type: str = field(default="cancel", init=False)


TtsClientMessage = Synthesize | Cancel | p.SessionClose


@dataclass(frozen=True, slots=True)
class SynthesisStarted:
    id: str
    sample_rate: int
    type: str = field(default="synthesis.started", init=False)


@dataclass(frozen=True, slots=True)
class SynthesisDone:
    id: str
    type: str = field(default="synthesis.done", init=False)


@dataclass(frozen=True, slots=True)
class SynthesisCancelled:
    id: str
    type: str = field(default="synthesis.cancelled", init=False)


TtsServerEvent = (
    SynthesisStarted | SynthesisDone | SynthesisCancelled | p.SessionClosed | p.ErrorEvent
)


def _object(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise p.ProtocolViolation(p.ErrorCode.MALFORMED_JSON, f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise p.ProtocolViolation(p.ErrorCode.MALFORMED_JSON, "a message must be a JSON object")
    return obj


def _typed(obj: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = obj.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) or not isinstance(value, kind):
        raise p.ProtocolViolation(p.ErrorCode.INVALID_MESSAGE, f"{key!r} has the wrong type")
    return value


def valid_request_id(value: str) -> bool:
    """1 to :data:`MAX_ID_CHARS` characters, each printable ASCII (no control character:
    an id is echoed in events and logged, it must not start a new log line)."""
    return 0 < len(value) <= MAX_ID_CHARS and all(" " <= c <= "~" for c in value)


def parse_tts_client_text(text: str) -> TtsClientMessage:
    """Parse one client frame; raises ``ProtocolViolation`` for anything not accepted."""
    obj = _object(text)
    kind = obj.get("type")
    if kind == "cancel":
        return Cancel()
    if kind == "session.close":
        return p.SessionClose()
    if kind != "synthesize":
        raise p.ProtocolViolation(
            p.ErrorCode.UNKNOWN_MESSAGE_TYPE, f"unknown type {p.shorten(kind)}"
        )
    text_value = _typed(obj, "text", str, None)
    if text_value is None:
        raise p.ProtocolViolation(p.ErrorCode.INVALID_MESSAGE, "synthesize: missing 'text'")
    if len(text_value) > MAX_TEXT_CHARS:
        raise p.ProtocolViolation(p.ErrorCode.INVALID_MESSAGE, f"text over {MAX_TEXT_CHARS} chars")
    request_id = _typed(obj, "id", str, None)
    if request_id is not None and not valid_request_id(request_id):
        raise p.ProtocolViolation(
            p.ErrorCode.INVALID_MESSAGE,
            f"'id' must be 1-{MAX_ID_CHARS} printable ASCII characters",
        )
    msg = Synthesize(
        text=text_value,
        voice=_typed(obj, "voice", str, "joe"),
        sample_rate=_typed(obj, "sample_rate", int, 16000),
        id=request_id,
    )
    if msg.voice not in VOICES:
        raise p.ProtocolViolation(
            p.ErrorCode.UNSUPPORTED_SETTINGS, f"unknown voice {p.shorten(msg.voice)}"
        )
    if msg.sample_rate not in p.SUPPORTED_SAMPLE_RATES:
        raise p.ProtocolViolation(
            p.ErrorCode.UNSUPPORTED_SETTINGS,
            f"sample_rate {p.shorten(msg.sample_rate)} not supported",
        )
    return msg


def encode_tts_client_message(msg: TtsClientMessage) -> str:
    if isinstance(msg, Synthesize):
        obj: dict[str, Any] = {
            "type": msg.type,
            "text": msg.text,
            "voice": msg.voice,
            "sample_rate": msg.sample_rate,
        }
        if msg.id is not None:
            obj["id"] = msg.id
        return json.dumps(obj)
    return json.dumps({"type": msg.type})


def encode_tts_server_event(evt: TtsServerEvent) -> str:
    if isinstance(evt, SynthesisStarted):
        return json.dumps({"type": evt.type, "id": evt.id, "sample_rate": evt.sample_rate})
    if isinstance(evt, SynthesisDone | SynthesisCancelled):
        return json.dumps({"type": evt.type, "id": evt.id})
    return p.encode_server_event(evt)


def parse_tts_server_event(text: str) -> TtsServerEvent:
    """Client side; raises ``ProtocolViolation`` for frames this version does not know."""
    obj = _object(text)
    kind = obj.get("type")
    if kind == "synthesis.started":
        return SynthesisStarted(_typed(obj, "id", str, ""), _typed(obj, "sample_rate", int, 0))
    if kind == "synthesis.done":
        return SynthesisDone(_typed(obj, "id", str, ""))
    if kind == "synthesis.cancelled":
        return SynthesisCancelled(_typed(obj, "id", str, ""))
    event = p.parse_server_event(text)
    if isinstance(event, p.SessionClosed | p.ErrorEvent):
        return event
    raise p.ProtocolViolation(p.ErrorCode.UNKNOWN_MESSAGE_TYPE, f"not a TTS event: {kind!r}")
