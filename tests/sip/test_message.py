"""Codec tests for message.py and headers.py."""

from __future__ import annotations

import pytest

from voxlane.transports.sip.errors import SipParseError
from voxlane.transports.sip.headers import (
    parse_cseq,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_comma_list,
)
from voxlane.transports.sip.message import (
    Headers,
    SipRequest,
    SipResponse,
    build_response,
    parse_message,
)

from .messages import COMPACT_INVITE, FOLDED_OPTIONS, crlf, linphone_invite, sipp_invite


def test_sipp_invite_parses() -> None:
    msg = parse_message(sipp_invite())
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert msg.uri == "sip:service@127.0.0.1:5060"
    assert msg.call_id == "1-4242@127.0.0.1"
    assert msg.cseq.number == 1 and msg.cseq.method == "INVITE"
    assert msg.from_addr.tag == "4242SIPpTag001"
    assert msg.from_addr.display_name == "sipp"
    assert msg.to_addr.tag is None
    via = msg.top_via
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP",
        "127.0.0.1",
        5061,
        "z9hG4bK-4242-1-0",
    )
    contact = msg.contact
    assert contact is not None and contact.uri == "sip:sipp@127.0.0.1:5061"
    assert msg.body.startswith(b"v=0\r\n") and msg.body.endswith(b"PCMU/8000\r\n")


def test_linphone_invite_parses() -> None:
    msg = parse_message(linphone_invite())
    assert isinstance(msg, SipRequest)
    assert msg.from_addr.display_name == "Alice Doe"
    assert msg.from_addr.tag == "Ab~cDe9F"
    assert msg.top_via.has_rport and msg.top_via.rport is None
    assert "REFER" in msg.headers.get_all("allow")
    assert msg.headers.get_all("supported") == ["replaces", "outbound", "gruu"]
    contact = msg.contact
    assert contact is not None
    assert contact.uri == "sip:alice@192.0.2.10;transport=udp"
    assert dict(contact.params)["+sip.instance"] == '"<urn:uuid:1-2-3>"'
    assert b"telephone-event/8000" in msg.body


def test_compact_headers() -> None:
    msg = parse_message(COMPACT_INVITE)
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.from_addr.tag == "1928301774"
    assert msg.headers.get("Content-Type") == "application/sdp"
    assert msg.headers.get("CONTACT") == "<sip:alice@pc33.atlanta.example.com>"
    assert msg.top_via.port is None
    assert msg.body == b""


def test_folded_headers_and_multi_valued_via() -> None:
    msg = parse_message(FOLDED_OPTIONS)
    assert [v.branch for v in msg.vias] == ["z9hG4bK-folded", "z9hG4bK-p1", "z9hG4bK-p2"]
    assert msg.from_addr.tag == "fold1"


def test_content_length_trims_extra_bytes() -> None:
    msg = parse_message(sipp_invite() + b"garbage-after-body")
    assert msg.body.endswith(b"PCMU/8000\r\n")


def test_content_length_larger_than_body_is_an_error() -> None:
    data = sipp_invite().replace(b"Content-Length:   129", b"Content-Length: 999")
    with pytest.raises(SipParseError, match="truncated"):
        parse_message(data)


def test_missing_content_length_takes_rest_of_datagram() -> None:
    data = sipp_invite().replace(b"Content-Length:   129\r\n", b"")
    assert parse_message(data).body.startswith(b"v=0")


def test_lf_only_line_ends_are_accepted() -> None:
    head, _, body = sipp_invite().partition(b"\r\n\r\n")
    msg = parse_message(head.replace(b"\r\n", b"\n") + b"\n\n" + body)
    assert msg.call_id == "1-4242@127.0.0.1" and msg.body.endswith(b"PCMU/8000\r\n")


def test_response_parses() -> None:
    data = crlf(
        "SIP/2.0 200 OK\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-ours;received=10.0.0.9;rport=5999\n"
        "From: <sip:agent@127.0.0.1>;tag=ours\n"
        "To: <sip:sipp@127.0.0.1>;tag=theirs\n"
        "Call-ID: c1\n"
        "CSeq: 2 BYE\n"
        "Content-Length: 0\n\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (200, "OK")
    assert msg.top_via.received == "10.0.0.9" and msg.top_via.rport == 5999


def test_roundtrip_build_and_parse() -> None:
    original = parse_message(linphone_invite())
    again = parse_message(original.to_bytes())
    assert isinstance(again, SipRequest)

    def without_length(msg: SipRequest | SipResponse) -> list[tuple[str, str]]:
        return [(k, v) for k, v in msg.headers if k != "content-length"]

    assert without_length(again) == without_length(original)
    assert again.body == original.body and again.call_id == original.call_id


def test_build_response_copies_and_tags() -> None:
    req = parse_message(FOLDED_OPTIONS)
    assert isinstance(req, SipRequest)
    resp = build_response(req, 200, to_tag="t1", headers=[("Allow", "INVITE, ACK")])
    assert len(resp.vias) == 3
    assert resp.to_addr.tag == "t1" and resp.from_addr.tag == "fold1"
    assert resp.cseq.method == "OPTIONS" and resp.call_id == "folded-1"
    parsed = parse_message(resp.to_bytes())
    assert isinstance(parsed, SipResponse) and parsed.status == 200
    trying = build_response(req, 100, to_tag="t1")
    assert trying.to_addr.tag is None and trying.reason == "Trying"


def test_to_bytes_refuses_header_injection() -> None:
    msg = SipRequest(method="OPTIONS", uri="sip:a@b", headers=Headers([("X-A", "a\r\nB: c")]))
    with pytest.raises(ValueError):
        msg.to_bytes()


@pytest.mark.parametrize(
    ("value", "uri", "display", "tag"),
    [
        ('"A \\"q\\" B" <sip:a@b>;tag=1', "sip:a@b", 'A "q" B', "1"),
        ("Bob <sip:bob@x.org:5070;transport=udp>", "sip:bob@x.org:5070;transport=udp", "Bob", None),
        ("sip:carol@y.org;tag=zz", "sip:carol@y.org", None, "zz"),
        ("<tel:+15551234>;tag=t", "tel:+15551234", None, "t"),
    ],
)
def test_name_addr(value: str, uri: str, display: str | None, tag: str | None) -> None:
    addr = parse_name_addr(value)
    assert (addr.uri, addr.display_name, addr.tag) == (uri, display, tag)
    assert parse_name_addr(addr.to_str()) == addr


@pytest.mark.parametrize(
    "value", ["", "<sip:a@b", '"unterminated <sip:a@b>', "<>", "no-scheme", "<sip:a@b> junk"]
)
def test_bad_name_addr(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(value)


def test_via_variants() -> None:
    via = parse_via("SIP / 2.0 / udp [2001:db8::1]:5062 ; branch=z9hG4bKx ; rport")
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP",
        "[2001:db8::1]",
        5062,
        "z9hG4bKx",
    )
    assert via.has_rport
    stamped = via.with_params(received="192.0.2.1", rport="4000")
    assert stamped.rport == 4000 and parse_via(stamped.to_str()) == stamped
    for bad in ["SIP/2.0/UDP", "HTTP/1.1 host", "SIP/2.0/UDP host:99999", "SIP/2.0/UDP h;;"]:
        with pytest.raises(SipParseError):
            parse_via(bad)


def test_cseq_and_uri() -> None:
    assert parse_cseq(" 42  INVITE ").number == 42
    for bad in ["", "INVITE", "x INVITE", "99999999999 INVITE", "1 IN VITE", "1 <x>"]:
        with pytest.raises(SipParseError):
            parse_cseq(bad)
    uri = parse_uri("sip:alice:pw@[::1]:5080;transport=udp?subject=x")
    assert (uri.user, uri.host, uri.port, uri.headers) == ("alice:pw", "[::1]", 5080, "subject=x")
    assert parse_uri(uri.to_str()) == uri
    with pytest.raises(SipParseError):
        parse_uri("tel:+1555")


def test_split_comma_list_respects_quotes_and_brackets() -> None:
    value = '"Doe, J" <sip:j@x;a=1,2>, <sip:k@y>'
    assert split_comma_list(value) == ['"Doe, J" <sip:j@x;a=1,2>', "<sip:k@y>"]


def test_mixed_line_ends_before_body() -> None:
    head, _, body = sipp_invite().partition(b"\r\n\r\n")
    msg = parse_message(head + b"\r\n\n" + body)
    assert msg.body.startswith(b"v=0")
