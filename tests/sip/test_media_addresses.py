"""Where the SIP layer sends (issue #10 items 5, 6 and the 503 part of 10), pure: SDP media
addresses must be IP literals (no hostname, no IPv6 zone), responses go to the source IP
whatever the Via says, the allowlist decides where RTP may go (not whether a call is
taken), RTP latching stays within the SDP's and the SIP source's allowed IPs, every 503
carries Retry-After."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxlane.transports.sip import (
    CallOffered,
    DialogConfig,
    EndpointConfig,
    SipEndpointCore,
    SipResponse,
    negotiate,
    parse_message,
    parse_sdp,
)
from voxlane.transports.sip.addresses import (
    Allowlist,
    RtpLatch,
    ip_literal,
    media_address_problem,
)
from voxlane.transports.sip.errors import MediaAddressError, SdpNotAcceptableError

from .messages import SIPP_SDP, crlf, sipp_invite
from .uac import CALLER, Caller, make_core, sent, statuses


def invite_with_sdp(sdp: str, call_id: str = "media-1") -> bytes:
    """sipp's INVITE with another SDP body (Content-Length fixed up)."""
    body = crlf(sdp)
    head = sipp_invite(call_id=call_id).split(b"\r\n\r\n", 1)[0]
    lines = [ln for ln in head.split(b"\r\n") if not ln.startswith(b"Content-Length")]
    return b"\r\n".join([*lines, b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body


def only_response(core: SipEndpointCore) -> SipResponse:
    (response,) = sent(core)
    assert isinstance(response, SipResponse)
    return response


# -- item 5: a hostname in c= is refused, never resolved -----------------------------


@pytest.mark.parametrize(
    ("sdp", "problem"),
    [
        (SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 example.invalid"), "not an IP"),
        (SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP6 localhost"), "not an IP"),
        (SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"), "unspecified"),
        (SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 224.2.1.1/127"), "multicast"),
        (SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 255.255.255.255"), "broadcast"),
        # A good session-level address does not excuse a media-level hostname.
        (SIPP_SDP + "c=IN IP4 rtp.example.invalid\n", "not an IP"),
    ],
)
def test_invite_with_an_unusable_media_address_is_refused_488(sdp: str, problem: str) -> None:
    core = make_core()
    core.receive_datagram(invite_with_sdp(sdp), CALLER, 0.0)
    response = only_response(core)
    assert response.status == 488
    warning = response.headers.get("warning") or ""
    assert warning.startswith(("301 voxlane", "399 voxlane")) and problem in warning, warning
    assert core.events_received() == []  # no CallOffered: no dialog, no slot taken
    stats = core.statistics()
    assert stats.dialogs == 0 and stats.media_refused == 1 and stats.internal_errors == 0


def test_hostname_warning_names_the_address() -> None:
    core = make_core()
    sdp = SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 example.invalid")
    core.receive_datagram(invite_with_sdp(sdp), CALLER, 0.0)
    warning = only_response(core).headers.get("warning")
    assert warning == (
        "301 voxlane \"media address 'example.invalid' is not an IP address "
        '(hostnames are not resolved)"'
    )


def test_ipv6_and_inactive_streams() -> None:
    core = make_core()
    ipv6 = SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP6 2001:db8::7")
    core.receive_datagram(invite_with_sdp(ipv6, "v6"), CALLER, 0.0)
    assert statuses(sent(core)) == [100]
    (offer,) = core.events_received()
    assert isinstance(offer, CallOffered)
    assert negotiate(parse_sdp(offer.invite.body)).remote_host == "2001:db8::7"
    # A rejected stream (port 0) with a hostname is never sent to: no reason to refuse.
    sdp = SIPP_SDP + "m=video 0 RTP/AVP 96\nc=IN IP4 video.example.invalid\n"
    core.receive_datagram(invite_with_sdp(sdp, "video-off"), CALLER, 0.0)
    assert statuses(sent(core)) == [100]


def test_negotiate_never_returns_a_hostname() -> None:
    offer = parse_sdp(crlf(SIPP_SDP.replace("127.0.0.1", "example.invalid")))
    with pytest.raises(MediaAddressError, match="not an IP address") as info:
        negotiate(offer)
    assert isinstance(info.value, SdpNotAcceptableError)  # the application answers 488
    chosen = negotiate(parse_sdp(crlf(SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP6 ::1"))))
    assert chosen.remote_host == "::1"


def test_ip_literals_are_recognised_without_resolving() -> None:
    assert ip_literal("127.0.0.1") == "127.0.0.1"
    assert ip_literal("2001:DB8:0::1") == "2001:db8::1"
    for text in (
        "localhost",
        "example.invalid",
        "127.1",
        "[::1]",
        "",
        " 1.2.3.4",
        "1.2.3.4 ",
        "é",
        "1" * 100,
        None,
    ):
        assert ip_literal(text) is None, text
    assert media_address_problem("192.0.2.1") is None
    assert media_address_problem("::") == "is unspecified"


# -- the Via cannot steer responses ------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        b";received=example.invalid",
        b";received=192.0.2.99",
        b";rport=9;received=example.invalid",
        b";rport=9",
    ],
)
def test_responses_go_to_the_source_ip_whatever_the_via_says(params: bytes) -> None:
    """A peer-written received (a hostname, or another host) would have sent our
    responses elsewhere, through a blocking lookup for a hostname."""
    core = make_core()
    data = sipp_invite().replace(b"branch=z9hG4bK-4242-1-0", b"branch=z9hG4bK-v" + params)
    core.receive_datagram(data, CALLER, 0.0)
    ((raw, addr),) = core.datagrams_to_send()
    assert addr[0] == CALLER[0]
    assert parse_message(raw).top_via.received in (None, CALLER[0])
    if b"rport" in params:
        assert addr == CALLER


# -- item 6: the allowlist decides where media goes, not whether the call is taken ----------


def test_a_natted_caller_with_a_private_sdp_address_is_taken() -> None:
    """The reviewer's repro: an INVITE from 203.0.113.5 (allowed) whose SDP names its
    private address 192.168.1.10 got ``488 ... outside the allowed sources``, so NAT
    latching could never work with --allow. The call is offered; RtpLatch keeps RTP from
    going to the private address (tests below)."""
    core = make_core(allowed=("203.0.113.0/24",))
    natted = SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 192.168.1.10")
    core.receive_datagram(invite_with_sdp(natted), ("203.0.113.5", 5061), 0.0)
    ((raw, addr),) = core.datagrams_to_send()
    response = parse_message(raw)
    assert isinstance(response, SipResponse) and response.status == 100
    assert addr == ("203.0.113.5", 5061)
    (offer,) = core.events_received()
    assert isinstance(offer, CallOffered) and offer.source == ("203.0.113.5", 5061)
    assert negotiate(parse_sdp(offer.invite.body)).remote_host == "192.168.1.10"
    stats = core.statistics()
    assert stats.media_refused == 0 and stats.dialogs == 1
    # The SIP source must still be allowed.
    core.receive_datagram(invite_with_sdp(natted, "other"), ("198.51.100.1", 5061), 0.0)
    ((raw, _),) = core.datagrams_to_send()
    forbidden = parse_message(raw)
    assert isinstance(forbidden, SipResponse) and forbidden.status == 403


def test_allowlist_parsing() -> None:
    allow = Allowlist(["10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32"])
    assert allow.restricted
    assert allow.allows("10.1.2.3") and allow.allows("192.0.2.7") and allow.allows("2001:db8::1")
    assert allow.allows("::ffff:10.0.0.1")  # a dual-stack socket's IPv4 peer
    assert not allow.allows("192.0.2.8") and not allow.allows("localhost")
    assert Allowlist().allows("203.0.113.1") and not Allowlist().allows("example.com")
    with pytest.raises(ValueError, match="notacidr"):
        Allowlist(["notacidr"])


# -- latching -----------------------------------------------------------------------------

SDP_ADDR = ("192.0.2.10", 7078)  # what the phone wrote: its private address
NAT = ("203.0.113.5", 40123)  # where its RTP really comes from: the NAT (also SIP source)


def test_latch_sends_to_the_sdp_address_until_the_callers_first_packet() -> None:
    latch = RtpLatch(SDP_ADDR, signaling_host=NAT[0])
    assert latch.destination == SDP_ADDR and latch.latched is None
    assert not latch.accept(("198.51.100.1", 7078))  # a stranger cannot latch
    assert not latch.accept(NAT, may_latch=False)  # not a negotiated payload type
    assert latch.destination == SDP_ADDR
    assert latch.accept(NAT)
    assert latch.destination == NAT == latch.latched
    assert latch.accept(NAT)
    assert not latch.accept(SDP_ADDR) and not latch.accept((NAT[0], NAT[1] + 2))
    assert latch.destination == NAT  # nothing moves it afterwards


def test_latch_from_the_sdp_ip_on_another_port() -> None:
    latch = RtpLatch(SDP_ADDR)
    assert not latch.accept(NAT)  # SIP source unknown: only the SDP's IP may latch
    assert latch.accept((SDP_ADDR[0], 9000))
    assert latch.destination == (SDP_ADDR[0], 9000)


def test_latch_sends_nothing_until_it_latches_when_the_sdp_address_is_not_allowed() -> None:
    allow = Allowlist(["203.0.113.0/24"])  # the NAT (SIP source) is allowed, the SDP is not
    latch = RtpLatch(SDP_ADDR, signaling_host=NAT[0], allowlist=allow)
    assert latch.destination is None and latch.latched is None
    assert not latch.accept(SDP_ADDR)  # RTP from the disallowed SDP address: ignored
    assert not latch.accept(("198.51.100.1", 7078))
    assert not latch.accept(NAT, may_latch=False)
    assert latch.destination is None
    assert latch.accept(NAT)  # the INVITE's source IP, any port
    assert latch.destination == NAT == latch.latched
    assert not latch.accept(SDP_ADDR) and latch.destination == NAT


def test_latch_without_an_allowlist_sends_to_the_sdp_address_until_latched() -> None:
    latch = RtpLatch(SDP_ADDR, signaling_host=NAT[0])
    assert latch.destination == SDP_ADDR
    latch = RtpLatch(SDP_ADDR, signaling_host=NAT[0], allowlist=Allowlist(["192.0.2.0/24"]))
    assert latch.destination == SDP_ADDR  # allowed: sent to until latched, as without one


def test_latch_stays_inside_the_allowlist() -> None:
    allow = Allowlist(["192.0.2.0/24"])  # the SDP address is allowed, the NAT is not
    latch = RtpLatch(SDP_ADDR, signaling_host=NAT[0], allowlist=allow)
    assert not latch.accept(NAT)
    assert latch.destination == SDP_ADDR
    assert latch.accept(SDP_ADDR)


def test_latch_refuses_a_hostname_destination() -> None:
    with pytest.raises(ValueError, match="must be an IP address"):
        RtpLatch(("example.invalid", 4000))
    with pytest.raises(ValueError, match="port"):
        RtpLatch(("192.0.2.1", 0))


hosts = st.one_of(
    st.sampled_from(["192.0.2.10", "203.0.113.5", "::1", "example.invalid", "", "0.0.0.0"]),
    st.text(max_size=20),
)


@given(
    st.lists(st.tuples(hosts, st.integers(-5, 70000), st.booleans()), max_size=30),
    st.sampled_from([["0.0.0.0/0"], ["203.0.113.0/24"], ["192.0.2.0/24"], ["::/0"]]),
)
def test_latch_destination_is_always_an_allowed_ip_literal(
    packets: list[tuple[str, int, bool]], allowed: list[str]
) -> None:
    allow = Allowlist(allowed)
    latch = RtpLatch(SDP_ADDR, signaling_host=NAT[0], allowlist=allow)
    for host, port, may_latch in packets:
        latch.accept((host, port), may_latch=may_latch)
        if latch.destination is None:
            assert not allow.allows(SDP_ADDR[0]) and latch.latched is None
            continue
        assert ip_literal(latch.destination[0]) is not None
        assert 1 <= latch.destination[1] <= 65535
        assert latch.destination[0] in (SDP_ADDR[0], NAT[0])
        assert allow.allows(latch.destination[0])


# -- item 2 of the review: no IPv6 zone anywhere we send ----------------------------------

ZONED = ["fe80::1%evil.example.com", "fe80::1%eth0", "::1%1", "2001:db8::7%lo"]


@pytest.mark.parametrize("text", ZONED)
def test_an_ipv6_zone_is_not_an_ip_literal(text: str) -> None:
    """With a ``%``, CPython's sendto calls getaddrinfo on every packet (with a zone that
    names a host, a lookup): such an address is never a destination."""
    assert ip_literal(text) is None
    assert media_address_problem(text) == "has an IPv6 zone (not accepted)"
    assert not Allowlist().allows(text) and not Allowlist(["::/0"]).allows(text)
    with pytest.raises(ValueError, match="must be an IP address"):
        RtpLatch((text, 4000))
    latch = RtpLatch(("2001:db8::7", 4000), signaling_host=text)
    assert not latch.accept((text, 4000)) and latch.destination == ("2001:db8::7", 4000)


def test_an_sdp_address_with_a_zone_is_refused_488() -> None:
    core = make_core()
    zoned = SIPP_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP6 fe80::1%evil.example.com")
    core.receive_datagram(invite_with_sdp(zoned), CALLER, 0.0)
    response = only_response(core)
    assert response.status == 488
    assert response.headers.get("warning") == (
        "301 voxlane \"media address 'fe80::1%evil.example.com' has an IPv6 zone (not accepted)\""
    )
    assert core.events_received() == [] and core.statistics().media_refused == 1
    with pytest.raises(MediaAddressError, match="zone"):
        negotiate(parse_sdp(invite_with_sdp(zoned).split(b"\r\n\r\n", 1)[1]))


def test_a_zoned_source_is_never_answered() -> None:
    """A request from a link-local peer with a zone: answering it means a sendto through
    getaddrinfo, so it is dropped (counted), whatever it is."""
    core = make_core()
    for data in (sipp_invite(), sipp_invite().replace(b"INVITE", b"OPTIONS", 1), b"garbage"):
        core.receive_datagram(data, ("fe80::1%eth0", 5061), 0.0)
    assert core.datagrams_to_send() == [] and core.events_received() == []
    stats = core.statistics()
    assert stats.unroutable == 3 and stats.dialogs == 0 and stats.internal_errors == 0


def test_an_allowlist_entry_with_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        Allowlist(["fe80::%eth0/64"])
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        Allowlist(["fe80::1%eth0"])


# -- Retry-After on every 503 -------------------------------------------------------------


def test_every_503_carries_retry_after() -> None:
    config = EndpointConfig(
        dialog=DialogConfig(local_host="127.0.0.1", local_port=5060), max_calls=1, retry_after_s=30
    )
    core = SipEndpointCore(config, token_factory=lambda: "t")
    call = Caller(core)
    call.invite(0.0)
    core.events_received()
    # The application's 503 (worker full, shutting down, no RTP port) ...
    core.reject("call-1", 503, 0.1)
    (busy,) = sent(core)
    assert isinstance(busy, SipResponse) and busy.status == 503
    assert busy.headers.get("retry-after") == "30"
    core.handle_timeout(0.6)  # ... and its retransmission
    (again,) = sent(core)
    assert isinstance(again, SipResponse) and again.headers.get("retry-after") == "30"
    # ... and the call limit's.
    Caller(core, call_id="a").invite(1.0)
    (full,) = Caller(core, call_id="b").invite(1.0)
    assert isinstance(full, SipResponse) and full.status == 503
    assert full.headers.get("retry-after") == "30"
    # Other statuses get none; a warning goes into the response.
    core.reject("a", 488, 1.1, warning='no "codec"')
    (other,) = sent(core)
    assert isinstance(other, SipResponse) and other.status == 488
    assert other.headers.get("retry-after") is None
    assert other.headers.get("warning") == '399 voxlane "no codec"'
    with pytest.raises(ValueError, match="retry_after_s"):
        SipEndpointCore(EndpointConfig(dialog=config.dialog, retry_after_s=-1))
