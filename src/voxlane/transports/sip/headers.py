"""Parsers for the structured SIP header values a UAS needs (RFC 3261 §20, §25).

Pure functions from one header *value* (text after the colon, already unfolded) to a
small frozen dataclass, and back with ``to_str()``. Each ``parse_*`` either returns a
value or raises :class:`~voxlane.transports.sip.errors.SipParseError`; never any other
exception, whatever the input, so callers may feed them peer-controlled text.

Only what a user agent server acts on is modelled: the Via's transport, sent-by and
parameters (``branch``, ``received``, ``rport``); a name-addr's display name, URI and
parameters (``tag``); a SIP URI's user, host and port; CSeq's number and method.
Everything else stays an opaque string in :class:`~voxlane.transports.sip.message.Headers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SipParseError

__all__ = [
    "CSeq",
    "NameAddr",
    "Params",
    "SipUri",
    "Via",
    "is_token",
    "parse_cseq",
    "parse_host_port",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
    "parse_via",
    "split_comma_list",
]

# RFC 3261 §25.1 "token" characters.
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_HOST_RE = re.compile(r"[A-Za-z0-9\-.]+")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_VIA_RE = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*(" + _TOKEN_RE.pattern + r")\s+(\S.*)$", re.IGNORECASE | re.DOTALL
)
# CSeq numbers are 32-bit unsigned and "MUST be less than 2**31" when chosen (§8.1.1.5).
_MAX_CSEQ = 2**32 - 1

Params = tuple[tuple[str, str | None], ...]


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token (method names, param names)."""
    return _TOKEN_RE.fullmatch(text) is not None


def split_comma_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and ``<...>``.

    Used for headers whose grammar is a list (Via, Contact, Route, Allow, ...). Empty
    elements are dropped. Never raises.
    """
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    in_angle = False
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif in_quotes and ch == "\\":
            escaped = True
        elif ch == '"' and not in_angle:
            in_quotes = not in_quotes
        elif not in_quotes and ch == "<":
            in_angle = True
        elif not in_quotes and ch == ">":
            in_angle = False
        elif ch == "," and not in_quotes and not in_angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _split_semicolons(text: str) -> list[str]:
    # Like split_comma_list but on ';' and keeping empties: parameters may hold quoted
    # strings ("a;b") that must not be cut.
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif in_quotes and ch == "\\":
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
        elif ch == ";" and not in_quotes:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if in_quotes:
        raise SipParseError(f"unterminated quoted string in {text!r}")
    parts.append("".join(current))
    return parts


def parse_params(text: str) -> Params:
    """Parse ``;name=value;flag`` into ``((name_lower, value_or_None), ...)``.

    ``text`` is everything after the first ``;`` (or empty). Names are lower-cased
    (parameter names are case-insensitive); values are kept verbatim.
    """
    if not text.strip():
        return ()
    out: list[tuple[str, str | None]] = []
    for raw in _split_semicolons(text):
        item = raw.strip()
        if not item:
            raise SipParseError(f"empty parameter in {text!r}")
        name, sep, value = item.partition("=")
        name = name.strip()
        if not is_token(name):
            raise SipParseError(f"bad parameter name {name!r}")
        out.append((name.lower(), value.strip() if sep else None))
    return tuple(out)


def _params_to_str(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _param(params: Params, name: str) -> str | None:
    for k, v in params:
        if k == name:
            return v
    return None


def parse_host_port(text: str) -> tuple[str, int | None]:
    """Parse ``host[:port]`` (host may be ``[ipv6]``); port must be 1..65535."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or _IPV6_RE.fullmatch(text[: end + 1]) is None:
            raise SipParseError(f"bad IPv6 reference in {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"junk after IPv6 host in {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_part = text.partition(":")
        port_text = port_part if sep else None
        if _HOST_RE.fullmatch(host) is None:
            raise SipParseError(f"bad host {host!r}")
    port: int | None = None
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
            raise SipParseError(f"bad port {port_text!r}")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise SipParseError(f"port out of range: {port}")
    return host, port


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:``/``sips:`` URI: ``scheme:[user@]host[:port][;params][?headers]``."""

    scheme: str
    host: str
    user: str | None = None
    port: int | None = None
    params: Params = ()
    headers: str | None = None

    def to_str(self) -> str:
        user = f"{self.user}@" if self.user is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        hdrs = f"?{self.headers}" if self.headers is not None else ""
        return f"{self.scheme}:{user}{self.host}{port}{_params_to_str(self.params)}{hdrs}"


def parse_uri(text: str) -> SipUri:
    """Parse a ``sip:`` or ``sips:`` URI. Other schemes (``tel:``) raise SipParseError."""
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() not in ("sip", "sips"):
        raise SipParseError(f"not a SIP URI: {text!r}")
    if any(c.isspace() for c in rest) or not rest:
        raise SipParseError(f"bad SIP URI: {text!r}")
    rest, qsep, headers = rest.partition("?")
    user: str | None = None
    if "@" in rest:
        user, _, rest = rest.rpartition("@")
        if not user:
            raise SipParseError(f"empty user part in {text!r}")
    hostport, _, params_text = rest.partition(";")
    host, port = parse_host_port(hostport)
    return SipUri(
        scheme=scheme.lower(),
        host=host,
        user=user,
        port=port,
        params=parse_params(params_text),
        headers=headers if qsep else None,
    )


@dataclass(frozen=True, slots=True)
class Via:
    """One Via hop: ``SIP/2.0/<transport> <host>[:<port>];params``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @property
    def branch(self) -> str | None:
        return _param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return _param(self.params, "received")

    @property
    def has_rport(self) -> bool:
        """True when the sender asked for symmetric response routing (RFC 3581)."""
        return any(k == "rport" for k, _ in self.params)

    @property
    def rport(self) -> int | None:
        """The rport value stamped by the receiver, or None (absent or empty)."""
        value = _param(self.params, "rport")
        if value is None or not value.isascii() or not value.isdigit() or len(value) > 5:
            return None
        port = int(value)
        return port if 1 <= port <= 65535 else None

    def with_params(self, **updates: str | None) -> Via:
        """Copy with parameters replaced or added (value None = flag parameter)."""
        names = {k.lower() for k in updates}
        kept = tuple((k, v) for k, v in self.params if k not in names)
        added = tuple((k.lower(), v) for k, v in updates.items())
        return Via(self.transport, self.host, self.port, kept + added)

    def to_str(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{_params_to_str(self.params)}"

    def stamped(self, source: tuple[str, int]) -> Via:
        """The Via as the receiving server must record it (§18.2.1, RFC 3581 §4).

        Adds ``received`` when the sent-by host is not the packet's source address, and
        sets ``rport`` to the source port when the sender asked for it. A ``received`` or
        ``rport`` value the sender wrote itself is overwritten: only the receiving server
        may set them, and trusting them would let a peer send our responses to any host
        (or make us resolve a hostname). So :meth:`response_address` of a stamped Via is
        always the source IP.
        """
        ip, port = source
        updates: dict[str, str | None] = {}
        if self.host.strip("[]") != ip or self.received not in (None, ip):
            updates["received"] = ip
        if self.has_rport and (self.rport != port or self.received not in (None, ip)):
            updates["received"] = ip
            updates["rport"] = str(port)
        return self.with_params(**updates) if updates else self

    def response_address(self, source: tuple[str, int]) -> tuple[str, int]:
        """Where a response to a request carrying this (stamped) Via goes over UDP (§18.2.2).

        With rport, back to the source; otherwise to ``received`` (or the sent-by host)
        at the sent-by port (default 5060).
        """
        if self.has_rport:
            return (self.received or source[0], self.rport or source[1])
        return (self.received or self.host.strip("[]"), self.port or 5060)


def parse_via(value: str) -> Via:
    """Parse a single Via value (split multi-valued lines with split_comma_list first)."""
    match = _VIA_RE.match(value)
    if match is None:
        raise SipParseError(f"bad Via: {value!r}")
    transport, rest = match.group(1).upper(), match.group(2)
    hostport, _, params_text = rest.partition(";")
    host, port = parse_host_port(hostport)
    return Via(transport, host, port, parse_params(params_text))


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/Route value: ``["display"] <uri>;params`` or ``uri;params``.

    ``uri`` is kept as text (it may be any scheme); use :func:`parse_uri` when a SIP
    URI is needed. ``params`` are the *header* parameters (``tag``, ``expires``).
    """

    uri: str
    display_name: str | None = None
    params: Params = ()

    @property
    def tag(self) -> str | None:
        return _param(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k != "tag")
        return NameAddr(self.uri, self.display_name, (*kept, ("tag", tag)))

    def to_str(self) -> str:
        display = ""
        if self.display_name:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{_params_to_str(self.params)}"


def parse_name_addr(value: str) -> NameAddr:
    """Parse a From/To/Contact-style value. ``*`` (wildcard Contact) is rejected."""
    text = value.strip()
    display: str | None = None
    if text.startswith('"'):
        i, chars = 1, []
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            chars.append(text[i])
            i += 1
        if i >= len(text):
            raise SipParseError(f"unterminated display name in {value!r}")
        display = "".join(chars)
        text = text[i + 1 :].lstrip()
        if not text.startswith("<"):
            raise SipParseError(f"display name without <uri> in {value!r}")
    lt = text.find("<")
    if lt >= 0:
        if display is None and text[:lt].strip():
            display = text[:lt].strip()
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(f"missing '>' in {value!r}")
        uri = text[lt + 1 : gt].strip()
        rest = text[gt + 1 :].strip()
        if rest and not rest.startswith(";"):
            raise SipParseError(f"junk after '>' in {value!r}")
        params_text = rest[1:]
    else:
        # addr-spec form: parameters after the URI belong to the header (§20.10).
        uri, _, params_text = text.partition(";")
        uri = uri.strip()
    if not uri or ":" not in uri or any(c.isspace() or c in "<>" for c in uri):
        raise SipParseError(f"bad URI in {value!r}")
    return NameAddr(uri, display, parse_params(params_text))


@dataclass(frozen=True, slots=True)
class CSeq:
    """CSeq: sequence number and method."""

    number: int
    method: str

    def to_str(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """Parse ``<number> <METHOD>``; the number must fit in 32 bits."""
    parts = value.split()
    if len(parts) != 2:
        raise SipParseError(f"bad CSeq: {value!r}")
    number, method = parts
    if not number.isascii() or not number.isdigit() or len(number) > 10:
        raise SipParseError(f"bad CSeq number: {number!r}")
    if int(number) > _MAX_CSEQ:
        raise SipParseError(f"CSeq number out of range: {number}")
    if not is_token(method):
        raise SipParseError(f"bad CSeq method: {method!r}")
    return CSeq(int(number), method)
