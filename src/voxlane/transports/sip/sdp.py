"""SDP offer/answer for one G.711 audio stream (RFC 4566, RFC 3264). Pure.

Typical use by the UAS::

    offer = parse_sdp(invite.body)           # SdpParseError on a malformed body
    chosen = negotiate(offer)                # SdpNotAcceptableError → answer 488
    body = build_answer(chosen, local_ip="203.0.113.5", local_port=40000, session_id=sid)
    # send RTP to (chosen.remote_host, chosen.remote_port) with chosen.payload_type

We speak PCMU (0) and PCMA (8) at 8 kHz with 20 ms frames, plus RFC 4733
telephone-event/8000 when offered. The first offered codec we support wins (the offerer
lists codecs in preference order, §5.1 of RFC 3264). Only RTP/AVP and RTP/AVPF audio
streams are usable (no SRTP); every other m-line is rejected in the answer with port 0,
keeping the m-line count and order as §6 requires.

Connection addresses are kept as written (RFC 4566 allows a hostname there), but a
negotiation only ever carries an IP literal: :func:`media_hosts` lists the addresses an
offer could make us send to, so the endpoint can refuse an offer with an unusable one
before anyone sees it (:func:`~.addresses.media_address_problem`), and :func:`negotiate`
raises :class:`MediaAddressError` rather than return a hostname. Nothing here resolves a
name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from dataclasses import replace as _replace

from .addresses import ip_literal, media_address_problem
from .errors import MediaAddressError, NoCommonCodecError, SdpParseError

__all__ = [
    "AudioNegotiation",
    "SdpMedia",
    "SessionDescription",
    "build_answer",
    "media_hosts",
    "negotiate",
    "parse_sdp",
]

_STATIC_CODECS = {0: "PCMU", 8: "PCMA"}
_USABLE_PROTOS = ("RTP/AVP", "RTP/AVPF")
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_ANSWER_DIRECTION = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
_LINE_RE = re.compile(r"([a-z])=(.*)")
# RFC 4566 §9: media and fmt are tokens, proto is token *("/" token). The answer echoes
# them for every stream it rejects, so they must be what an SDP line may hold.
_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_TOKEN_RE = re.compile(_TOKEN)
_PROTO_RE = re.compile(rf"{_TOKEN}(?:/{_TOKEN})*")
PTIME_MS = 20


@dataclass(frozen=True, slots=True)
class SdpMedia:
    """One ``m=`` section. ``rtpmap`` maps payload type → (encoding, clock rate)."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    ptime: int | None = None
    direction: str = "sendrecv"


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A parsed SDP body: session-level connection address and the media sections."""

    origin: str
    connection: str | None
    media: tuple[SdpMedia, ...]


@dataclass(frozen=True, slots=True)
class AudioNegotiation:
    """The outcome of :func:`negotiate`: what to send, where, and how to answer."""

    payload_type: int
    encoding: str  # "PCMU" or "PCMA"
    remote_host: str
    remote_port: int
    media_index: int  # which m-line of the offer was accepted
    offer_media: tuple[SdpMedia, ...]
    telephone_event: int | None = None
    direction: str = "sendrecv"  # our direction, as written in the answer
    clock_rate: int = 8000
    ptime_ms: int = PTIME_MS

    @property
    def samples_per_frame(self) -> int:
        return self.clock_rate * self.ptime_ms // 1000


def _connection_address(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpParseError(f"bad c= line: {value[:60]!r}")
    return parts[2].split("/")[0]  # drop a multicast TTL / count suffix


def _int(text: str, what: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 6 or not low <= int(text) <= high:
        raise SdpParseError(f"bad {what}: {text[:20]!r}")
    return int(text)


def _media_line(value: str) -> SdpMedia:
    parts = value.split()
    if len(parts) < 4:
        raise SdpParseError(f"bad m= line: {value[:60]!r}")
    port = _int(parts[1].split("/")[0], "media port", 0, 65535)
    media, proto, formats = parts[0], parts[2], tuple(parts[3:])
    if not (
        _TOKEN_RE.fullmatch(media)
        and _PROTO_RE.fullmatch(proto)
        and all(_TOKEN_RE.fullmatch(f) for f in formats)
    ):
        raise SdpParseError(f"bad m= line: {value[:60]!r}")
    return SdpMedia(media=media, port=port, proto=proto, formats=formats)


def _apply_attribute(media: SdpMedia, value: str) -> SdpMedia:
    name, _, arg = value.partition(":")
    if name == "rtpmap":
        pt_text, _, spec = arg.partition(" ")
        pieces = spec.strip().split("/")
        if len(pieces) < 2:
            raise SdpParseError(f"bad rtpmap: {value[:60]!r}")
        pt = _int(pt_text.strip(), "rtpmap payload type", 0, 127)
        rate = _int(pieces[1], "clock rate", 1, 10_000_000)
        media.rtpmap[pt] = (pieces[0], rate)
    elif name == "fmtp":
        pt_text, _, params = arg.partition(" ")
        if pt_text.isascii() and pt_text.isdigit() and len(pt_text) <= 3:
            media.fmtp[int(pt_text)] = params.strip()
    elif name == "ptime":
        return _replace(media, ptime=_int(arg.strip().split(".")[0], "ptime", 1, 10_000))
    elif name in _DIRECTIONS:
        return _replace(media, direction=name)
    return media


def parse_sdp(body: bytes) -> SessionDescription:
    """Parse an SDP body. Raises :class:`SdpParseError` (only) when it is malformed."""
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise SdpParseError("SDP is not UTF-8") from None
    lines = [line for line in re.split(r"\r?\n", text) if line.strip()]
    if not lines or lines[0].strip() != "v=0":
        raise SdpParseError("SDP must start with v=0")
    origin = ""
    session_connection: str | None = None
    media: list[SdpMedia] = []
    for line in lines[1:]:
        match = _LINE_RE.fullmatch(line.strip())
        if match is None:
            raise SdpParseError(f"bad SDP line: {line[:60]!r}")
        kind, value = match.groups()
        if kind == "m":
            media.append(_media_line(value))
        elif kind == "c":
            address = _connection_address(value)
            if media:
                media[-1] = _replace(media[-1], connection=address)
            else:
                session_connection = address
        elif kind == "o" and not media:
            origin = value
        elif kind == "a" and media:
            media[-1] = _apply_attribute(media[-1], value)
    return SessionDescription(origin=origin, connection=session_connection, media=tuple(media))


def _encoding_of(media: SdpMedia, pt: int) -> tuple[str, int] | None:
    if pt in media.rtpmap:
        name, rate = media.rtpmap[pt]
        return name.upper(), rate
    if pt in _STATIC_CODECS:
        return _STATIC_CODECS[pt], 8000
    return None


def negotiate(
    offer: SessionDescription,
    *,
    codecs: tuple[str, ...] = ("PCMU", "PCMA"),
    telephone_event: bool = True,
) -> AudioNegotiation:
    """Pick the first usable audio stream and the offerer's first codec among ``codecs``.

    Raises :class:`NoCommonCodecError` when no audio m-line offers PCMU/PCMA at 8 kHz
    over RTP/AVP(F) with a connection address, :class:`MediaAddressError` when the chosen
    stream's address is not a usable IP literal; the caller should answer 488 to either
    (both are :class:`~.errors.SdpNotAcceptableError`). ``remote_host`` of the result is
    an IP literal in canonical form.
    """
    wanted = {c.upper() for c in codecs}
    for index, media in enumerate(offer.media):
        host = _media_host(offer, media)
        if host is None:
            continue
        for fmt in media.formats:
            if not fmt.isascii() or not fmt.isdigit() or int(fmt) > 127:
                continue
            pt = int(fmt)
            encoding = _encoding_of(media, pt)
            if encoding is None or encoding[0] not in wanted or encoding[1] != 8000:
                continue
            te = None
            if telephone_event:
                te = next(
                    (
                        p
                        for p in _format_pts(media)
                        if _encoding_of(media, p) == ("TELEPHONE-EVENT", 8000)
                    ),
                    None,
                )
            problem = media_address_problem(host)
            remote_host = ip_literal(host)
            if problem is not None or remote_host is None:
                raise MediaAddressError(f"media address {host[:60]!r} {problem}")
            return AudioNegotiation(
                payload_type=pt,
                encoding=encoding[0],
                remote_host=remote_host,
                remote_port=media.port,
                media_index=index,
                offer_media=offer.media,
                telephone_event=te,
                direction=_ANSWER_DIRECTION.get(media.direction, "sendrecv"),
            )
    offered = [f"{m.media} {m.proto} {' '.join(m.formats)}" for m in offer.media]
    raise NoCommonCodecError(f"no PCMU/PCMA 8 kHz RTP/AVP audio stream in offer: {offered}")


def _media_host(offer: SessionDescription, media: SdpMedia) -> str | None:
    """The connection address of a stream :func:`negotiate` could pick, else None."""
    if media.media != "audio" or media.port == 0 or media.proto not in _USABLE_PROTOS:
        return None
    return media.connection or offer.connection


def media_hosts(offer: SessionDescription) -> list[str]:
    """The connection addresses of the offer's usable audio streams, as written: every
    address a negotiation of this offer could send RTP to."""
    hosts = (_media_host(offer, media) for media in offer.media)
    return [host for host in hosts if host is not None]


def _format_pts(media: SdpMedia) -> list[int]:
    return [int(f) for f in media.formats if f.isascii() and f.isdigit() and int(f) <= 127]


def build_answer(
    chosen: AudioNegotiation,
    *,
    local_ip: str,
    local_port: int,
    session_id: int,
    session_version: int = 1,
    username: str = "voxlane",
) -> bytes:
    """Build the SDP answer to the offer ``chosen`` came from (CRLF line ends, bytes).

    Increase ``session_version`` when a later answer in the same dialog differs.
    """
    family = "IP6" if ":" in local_ip else "IP4"
    lines = [
        "v=0",
        f"o={username} {session_id} {session_version} IN {family} {local_ip}",
        "s=voxlane",
        f"c=IN {family} {local_ip}",
        "t=0 0",
    ]
    for index, media in enumerate(chosen.offer_media):
        if index != chosen.media_index:
            lines.append(f"m={media.media} 0 {media.proto} {media.formats[0]}")
            continue
        pts = [chosen.payload_type]
        if chosen.telephone_event is not None:
            pts.append(chosen.telephone_event)
        lines.append(f"m=audio {local_port} {media.proto} {' '.join(map(str, pts))}")
        lines.append(f"a=rtpmap:{chosen.payload_type} {chosen.encoding}/{chosen.clock_rate}")
        if chosen.telephone_event is not None:
            lines.append(f"a=rtpmap:{chosen.telephone_event} telephone-event/8000")
            lines.append(f"a=fmtp:{chosen.telephone_event} 0-16")
        lines.append(f"a=ptime:{chosen.ptime_ms}")
        lines.append(f"a={chosen.direction}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
