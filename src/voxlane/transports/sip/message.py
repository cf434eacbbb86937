"""SIP message model and codec for UDP (RFC 3261 §7, §18.3). Pure and synchronous.

Contracts:

* :func:`parse_message` turns one datagram into a :class:`SipRequest` or
  :class:`SipResponse`, or raises :class:`SipParseError` with a reason. It never raises
  anything else, whatever the bytes (the fuzz tests hold it to that). A message it
  returns has a valid start line, a Via, From, To, Call-ID and CSeq that parse, a CSeq
  method equal to the request method, and a body trimmed to Content-Length.
* ``to_bytes()`` serializes a message, writing a fresh Content-Length last. Header
  values containing CR or LF are refused with ``ValueError`` (header injection).
* :func:`build_response` answers a request the way §8.2.6 says: Via (all, in order),
  From, To (plus our tag), Call-ID and CSeq copied; Record-Route too on a dialog-creating
  response to INVITE (§12.1.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import SipParseError
from .headers import (
    CSeq,
    NameAddr,
    Via,
    is_token,
    parse_cseq,
    parse_name_addr,
    parse_via,
    split_comma_list,
)

__all__ = [
    "REASON_PHRASES",
    "Headers",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "build_response",
    "parse_message",
]

SIP_VERSION = "SIP/2.0"

# Compact header forms (RFC 3261 §7.3.3 and later RFCs) → canonical lower-case name.
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
    "v": "via", "o": "event", "r": "refer-to", "b": "referred-by", "u": "allow-events",
    "a": "accept-contact", "j": "reject-contact", "d": "request-disposition",
    "x": "session-expires", "y": "identity",
}  # fmt: skip

# Spelling used on output for names whose title-case would be wrong.
_DISPLAY_NAMES = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version", "rack": "RAck", "rseq": "RSeq",
}  # fmt: skip

# Headers whose grammar is a comma-separated list; get_all() splits their lines.
_LIST_HEADERS = frozenset(
    {"via", "contact", "route", "record-route", "allow", "supported", "require",
     "proxy-require", "unsupported", "accept", "accept-encoding", "accept-language"}
)  # fmt: skip

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 415: "Unsupported Media Type", 420: "Bad Extension",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    603: "Decline",
}  # fmt: skip

_MANDATORY = ("via", "from", "to", "call-id", "cseq")
_LINE_SPLIT = re.compile(rb"\r?\n")


def canonical_name(name: str) -> str:
    """Lower-case a header name and expand a compact form (``"f"`` → ``"from"``)."""
    lowered = name.strip().lower()
    return COMPACT_FORMS.get(lowered, lowered)


def display_name(canonical: str) -> str:
    """The spelling written on the wire for a canonical header name."""
    return _DISPLAY_NAMES.get(canonical) or "-".join(p.capitalize() for p in canonical.split("-"))


class Headers:
    """Ordered, case-insensitive, multi-valued SIP headers.

    Names are stored canonical (lower-case, compact forms expanded); order of lines is
    kept, as it matters for Via and Route.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(k), v) for k, v in items]

    def get(self, name: str) -> str | None:
        """The first line's value for ``name``, or None."""
        key = canonical_name(name)
        for k, v in self._items:
            if k == key:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value for ``name`` in order; list-valued headers are split on commas."""
        key = canonical_name(name)
        values = [v for k, v in self._items if k == key]
        if key in _LIST_HEADERS:
            return [part for v in values for part in split_comma_list(v)]
        return values

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` by one line (kept at the first one's place)."""
        key = canonical_name(name)
        out: list[tuple[str, str]] = []
        placed = False
        for k, v in self._items:
            if k != key:
                out.append((k, v))
            elif not placed:
                out.append((k, value))
                placed = True
        if not placed:
            out.append((key, value))
        self._items = out

    def remove(self, name: str) -> None:
        key = canonical_name(name)
        self._items = [(k, v) for k, v in self._items if k != key]

    def copy(self) -> Headers:
        return Headers(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(slots=True, eq=False)
class SipMessage:
    """Fields and accessors shared by requests and responses."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def call_id(self) -> str:
        value = self.headers.get("call-id")
        if value is None or not value.strip():
            raise SipParseError("missing Call-ID")
        return value.strip()

    @property
    def cseq(self) -> CSeq:
        value = self.headers.get("cseq")
        if value is None:
            raise SipParseError("missing CSeq")
        return parse_cseq(value)

    @property
    def from_addr(self) -> NameAddr:
        return _name_addr(self.headers, "from")

    @property
    def to_addr(self) -> NameAddr:
        return _name_addr(self.headers, "to")

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("via")]

    @property
    def top_via(self) -> Via:
        values = self.headers.get_all("via")
        if not values:
            raise SipParseError("missing Via")
        return parse_via(values[0])

    @property
    def contact(self) -> NameAddr | None:
        """The first Contact, or None when absent or ``*``."""
        values = self.headers.get_all("contact")
        if not values or values[0].strip() == "*":
            return None
        return parse_name_addr(values[0])

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialize for one UDP datagram; Content-Length is (re)computed and written last."""
        lines = [self._start_line()]
        for name, value in self.headers:
            if name == "content-length":
                continue
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} value contains CR or LF")
            lines.append(f"{display_name(name)}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass(slots=True, eq=False)
class SipRequest(SipMessage):
    """A SIP request. ``method`` is case-sensitive (§7.1); ``uri`` is kept as text."""

    method: str = "OPTIONS"
    uri: str = "sip:invalid"

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"


@dataclass(slots=True, eq=False)
class SipResponse(SipMessage):
    """A SIP response."""

    status: int = 200
    reason: str = "OK"

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"


def _name_addr(headers: Headers, name: str) -> NameAddr:
    value = headers.get(name)
    if value is None:
        raise SipParseError(f"missing {display_name(name)}")
    return parse_name_addr(value)


def _split_head_body(data: bytes) -> tuple[bytes, bytes]:
    # The empty line ends the headers; accept bare LF line ends too (robustness, §7.5).
    candidates = [(i, n) for i, n in ((data.find(b"\r\n\r\n"), 4), (data.find(b"\n\n"), 2))]
    found = [(i, n) for i, n in candidates if i >= 0]
    if not found:
        return data.rstrip(b"\r\n"), b""  # no empty line: all headers, no body
    index, length = min(found)
    # "\r\n\n" (mixed line ends) ends the headers too; drop the stray CR.
    return data[:index].rstrip(b"\r"), data[index + length :]


def _parse_header_lines(lines: list[str]) -> Headers:
    headers = Headers()
    items: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            # Folded continuation (§7.3.1): joins the previous line with one space.
            if not items:
                raise SipParseError("continuation line before any header")
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not is_token(name):
            raise SipParseError(f"bad header line {line[:60]!r}")
        items.append((name, value.strip()))
    for name, value in items:
        headers.add(name, value)
    return headers


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one datagram. Raises :class:`SipParseError` (only) on malformed input."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SipParseError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.strip():
        raise SipParseError("empty datagram")
    head, body = _split_head_body(data.lstrip(b"\r\n"))
    try:
        lines = [line.decode("utf-8") for line in _LINE_SPLIT.split(head)]
    except UnicodeDecodeError:
        raise SipParseError("header section is not UTF-8") from None
    if any("\r" in line or "\x00" in line for line in lines):
        raise SipParseError("bare CR or NUL in header section")
    start, header_lines = lines[0], lines[1:]
    headers = _parse_header_lines(header_lines)
    message: SipRequest | SipResponse = _parse_start_line(start, headers)
    message.body = _checked_body(headers, body)
    _validate(message)
    return message


def _parse_start_line(start: str, headers: Headers) -> SipRequest | SipResponse:
    if start.upper().startswith(SIP_VERSION + " "):
        parts = start.split(" ", 2)
        code = parts[1]
        if len(code) != 3 or not code.isascii() or not code.isdigit():
            raise SipParseError(f"bad status code {code!r}")
        status = int(code)
        if not 100 <= status <= 699:
            raise SipParseError(f"status code out of range: {status}")
        reason = parts[2] if len(parts) > 2 else ""
        return SipResponse(headers=headers, status=status, reason=reason)
    parts = start.split()
    if len(parts) != 3:
        raise SipParseError(f"bad start line {start[:80]!r}")
    method, uri, version = parts
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported SIP version {version[:20]!r}")
    if not is_token(method):
        raise SipParseError(f"bad method {method[:20]!r}")
    if ":" not in uri:
        raise SipParseError(f"bad Request-URI {uri[:80]!r}")
    return SipRequest(headers=headers, method=method, uri=uri)


def _checked_body(headers: Headers, body: bytes) -> bytes:
    values = {v.strip() for v in headers.get_all("content-length")}
    if not values:
        return body  # UDP: without Content-Length the body runs to the datagram's end (§18.3)
    if len(values) > 1:
        raise SipParseError("conflicting Content-Length headers")
    (value,) = values
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise SipParseError(f"bad Content-Length {value[:20]!r}")
    length = int(value)
    if length > len(body):
        raise SipParseError(f"body truncated: Content-Length {length}, got {len(body)} bytes")
    return body[:length]  # §18.3: bytes past Content-Length are discarded


def _validate(message: SipRequest | SipResponse) -> None:
    for name in _MANDATORY:
        if message.headers.get(name) is None:
            raise SipParseError(f"missing mandatory header {display_name(name)}")
    _ = message.call_id, message.from_addr, message.to_addr, message.vias
    cseq = message.cseq
    if isinstance(message, SipRequest) and cseq.method != message.method:
        raise SipParseError(f"CSeq method {cseq.method} does not match {message.method}")


def build_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """Build a response to ``request`` (§8.2.6.2).

    ``to_tag`` is added to To unless To already has a tag or ``status`` is 100 (a 100
    Trying creates no dialog). ``headers`` are appended after the copied ones; give a
    ``Content-Type`` with a non-empty body.
    """
    out = Headers()
    for value in request.headers.get_all("via"):
        out.add("via", value)
    out.add("from", request.headers.get("from") or "")
    to_value = request.headers.get("to") or ""
    if to_tag is not None and status > 100 and "tag" not in _param_names(to_value):
        to_value = f"{to_value};tag={to_tag}"
    out.add("to", to_value)
    out.add("call-id", request.headers.get("call-id") or "")
    out.add("cseq", request.headers.get("cseq") or "")
    if request.method == "INVITE" and 100 < status < 300:
        for value in request.headers.get_all("record-route"):
            out.add("record-route", value)
    for name, value in headers:
        out.add(name, value)
    phrase = reason if reason is not None else REASON_PHRASES.get(status, "Unknown")
    return SipResponse(headers=out, body=body, status=status, reason=phrase)


def _param_names(value: str) -> set[str]:
    try:
        return {k for k, _ in parse_name_addr(value).params}
    except SipParseError:
        return set()
