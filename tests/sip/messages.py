"""Real-world-shaped SIP messages shared by the tests (CRLF line ends added by ``crlf``)."""

from __future__ import annotations


def crlf(text: str) -> bytes:
    """Turn a readable ``\\n`` block into a wire message with CRLF line ends."""
    return text.replace("\n", "\r\n").encode("utf-8")


SIPP_SDP = (
    "v=0\n"
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1\n"
    "s=-\n"
    "c=IN IP4 127.0.0.1\n"
    "t=0 0\n"
    "m=audio 6000 RTP/AVP 0\n"
    "a=rtpmap:0 PCMU/8000\n"
)


def sipp_invite(
    call_id: str = "1-4242@127.0.0.1",
    branch: str = "z9hG4bK-4242-1-0",
    from_tag: str = "4242SIPpTag001",
    cseq: int = 1,
) -> bytes:
    """The INVITE sipp's built-in ``uac`` scenario sends."""
    body = crlf(SIPP_SDP)
    head = (
        "INVITE sip:service@127.0.0.1:5060 SIP/2.0\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\n"
        f"From: sipp <sip:sipp@127.0.0.1:5061>;tag={from_tag}\n"
        "To: service <sip:service@127.0.0.1:5060>\n"
        f"Call-ID: {call_id}\n"
        f"CSeq: {cseq} INVITE\n"
        "Contact: sip:sipp@127.0.0.1:5061\n"
        "Max-Forwards: 70\n"
        "Subject: Performance Test\n"
        "Content-Type: application/sdp\n"
        f"Content-Length:   {len(body)}\n"
        "\n"
    )
    return crlf(head) + body


LINPHONE_SDP = (
    "v=0\n"
    "o=alice 3012 1844 IN IP4 192.0.2.10\n"
    "s=Talk\n"
    "c=IN IP4 192.0.2.10\n"
    "t=0 0\n"
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\n"
    "m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\n"
    "a=rtpmap:96 opus/48000/2\n"
    "a=fmtp:96 useinbandfec=1\n"
    "a=rtpmap:97 speex/16000\n"
    "a=fmtp:97 vbr=on\n"
    "a=rtpmap:98 speex/8000\n"
    "a=fmtp:98 vbr=on\n"
    "a=fmtp:18 annexb=yes\n"
    "a=rtpmap:101 telephone-event/48000\n"
    "a=rtpmap:99 telephone-event/16000\n"
    "a=rtpmap:100 telephone-event/8000\n"
    "a=rtcp-fb:* trr-int 1000\n"
    "a=rtcp-fb:* ccm tmmbr\n"
)


def linphone_invite() -> bytes:
    """A Linphone-shaped INVITE: display names, many codecs, Allow, Supported, UA."""
    body = crlf(LINPHONE_SDP)
    head = (
        "INVITE sip:agent@198.51.100.7 SIP/2.0\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK.Xn3sD2Kq1;rport\n"
        'From: "Alice Doe" <sip:alice@example.org>;tag=Ab~cDe9F\n'
        "To: <sip:agent@198.51.100.7>\n"
        "CSeq: 20 INVITE\n"
        "Call-ID: aBcDeF0123-xyz\n"
        "Max-Forwards: 70\n"
        "Supported: replaces, outbound, gruu\n"
        "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE,\n"
        " INFO, UPDATE\n"
        "Content-Type: application/sdp\n"
        f"Content-Length: {len(body)}\n"
        'Contact: <sip:alice@192.0.2.10;transport=udp>;+sip.instance="<urn:uuid:1-2-3>"\n'
        "User-Agent: LinphoneAndroid/5.2 (Pixel) LinphoneSDK/5.3.0\n"
        "\n"
    )
    return crlf(head) + body


COMPACT_INVITE = crlf(
    "INVITE sip:bob@biloxi.example.com SIP/2.0\n"
    "v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\n"
    "f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n"
    "t: Bob <sip:bob@biloxi.example.com>\n"
    "i: a84b4c76e66710@pc33.atlanta.example.com\n"
    "CSeq: 314159 INVITE\n"
    "m: <sip:alice@pc33.atlanta.example.com>\n"
    "c: application/sdp\n"
    "l: 0\n"
    "\n"
)

FOLDED_OPTIONS = crlf(
    "OPTIONS sip:agent@127.0.0.1 SIP/2.0\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070\n"
    " ;branch=z9hG4bK-folded\n"
    "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-p1,\n"
    "\tSIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-p2\n"
    "From: <sip:monitor@127.0.0.1>\n"
    "  ;tag=fold1\n"
    "To: <sip:agent@127.0.0.1>\n"
    "Call-ID: folded-1\n"
    "CSeq: 7 OPTIONS\n"
    "Max-Forwards: 70\n"
    "Content-Length: 0\n"
    "\n"
)
