"""Malformed SIP messages and garbage datagrams, each with the answer we expect.

``expect`` is the status of the one response the endpoint should send (400 when the
routing headers can be read) or None when the datagram must be dropped silently.
"""

from __future__ import annotations

from .messages import crlf, sipp_invite

GOOD = sipp_invite(call_id="corpus")


def _head(
    extra: str = "",
    *,
    drop: str = "",
    start: str = "OPTIONS sip:a@127.0.0.1 SIP/2.0",
    cseq: str = "1 OPTIONS",
) -> bytes:
    lines = [
        start,
        "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-c",
        "From: <sip:x@127.0.0.1>;tag=f",
        "To: <sip:a@127.0.0.1>",
        "Call-ID: corpus-opt",
        f"CSeq: {cseq}",
    ]
    lines = [ln for ln in lines if not (drop and ln.startswith(drop))]
    if extra:
        lines.append(extra)
    return crlf("\n".join(lines) + "\n\n")


CORPUS: list[tuple[str, bytes, int | None]] = [
    ("empty", b"", None),
    ("nul bytes", b"\x00" * 100, None),
    ("binary noise", bytes(range(256)), None),
    ("word only", b"INVITE", None),
    ("start line only", b"INVITE sip:a@b SIP/2.0\r\n\r\n", None),
    ("sip version 3", _head(start="OPTIONS sip:a@127.0.0.1 SIP/3.0"), None),
    ("missing Call-ID", _head(drop="Call-ID"), None),
    ("missing CSeq", _head(drop="CSeq"), None),
    ("missing Via", _head(drop="Via"), None),
    ("CSeq method mismatch", _head(cseq="1 INVITE"), 400),
    ("CSeq not a number", _head(cseq="one OPTIONS"), None),
    ("CSeq too big", _head(cseq="99999999999 OPTIONS"), None),
    ("Via garbage", GOOD.replace(b"SIP/2.0/UDP 127.0.0.1:5061", b"garbage"), None),
    ("Via port too big", GOOD.replace(b"127.0.0.1:5061;branch", b"127.0.0.1:99999;branch"), None),
    ("From without URI", GOOD.replace(b"From: sipp <sip:sipp@127.0.0.1:5061>", b"From: x"), None),
    ("To unterminated quote", GOOD.replace(b"To: service", b'To: "service'), None),
    ("Content-Length too big", GOOD.replace(b"Content-Length:   129", b"l: 500"), 400),
    ("Content-Length negative", GOOD.replace(b"Content-Length:   129", b"l: -5"), 400),
    ("Content-Length text", GOOD.replace(b"Content-Length:   129", b"l: lots"), 400),
    ("Content-Length twice", GOOD.replace(b"Max-Forwards", b"l: 3\r\nMax-Forwards"), 400),
    ("header without colon", _head("Max-Forwards 70"), 400),
    ("continuation first", b"OPTIONS sip:a@b SIP/2.0\r\n folded\r\n\r\n", None),
    ("invalid UTF-8", GOOD.replace(b"Performance Test", b"\xff\xfe\xfd"), 400),
    ("bare CR", GOOD.replace(b"Performance Test", b"Perf\rTest"), 400),
    ("NUL in header", GOOD.replace(b"Performance Test", b"Perf\x00Test"), 400),
    ("status 2000", b"SIP/2.0 2000 OK\r\nCall-ID: x\r\n\r\n", None),
    ("status 099", b"SIP/2.0 099 Hmm\r\n\r\n", None),
    ("Request-URI without scheme", _head(start="OPTIONS nowhere SIP/2.0"), 400),
    ("method with bad chars", _head(start="OPT<ONS sip:a@b SIP/2.0"), None),
    (
        "malformed ACK is never answered",
        _head("Max-Forwards 70", start="ACK sip:a@127.0.0.1 SIP/2.0", cseq="1 ACK"),
        None,
    ),
    ("RTP packet on the SIP port", bytes.fromhex("80000001000000a0deadbeef") + b"\xff" * 160, None),
    ("STUN binding request", bytes.fromhex("000100002112a442") + bytes(12), None),
    ("HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None),
    ("keep-alive CRLF", b"\r\n\r\n", None),
    ("huge header line", _head("X-Big: " + "a" * 60000), 200),
    ("many Vias", _head("\n".join(["Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-m"] * 200)), 200),
    (
        "display name only",
        GOOD.replace(b"To: service <sip:service@127.0.0.1:5060>", b"To: bob"),
        None,
    ),
    ("empty header name", _head(": value"), 400),
    (
        "IPv6 host unterminated",
        GOOD.replace(b"Via: SIP/2.0/UDP 127.0.0.1:5061", b"Via: SIP/2.0/UDP [::1:5061"),
        None,
    ),
    ("semicolons only", GOOD.replace(b";tag=4242SIPpTag001", b";;;"), None),
]
