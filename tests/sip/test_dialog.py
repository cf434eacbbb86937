"""Call flows through SipEndpointCore and UasDialog, on virtual time."""

from __future__ import annotations

import pytest

from voxlane.transports.sip import (
    CallConfirmed,
    CallOffered,
    CallTerminated,
    DialogConfig,
    DialogState,
    DialogStateError,
    SipRequest,
    SipResponse,
    UasDialog,
    UnknownCallError,
    parse_message,
)
from voxlane.transports.sip.dialog import TRANSITIONS

from .messages import sipp_invite
from .uac import CALLER, Caller, make_core, sent, statuses

SDP = b"v=0\r\no=voxlane 1 1 IN IP4 127.0.0.1\r\n"


def test_normal_call_bye_from_caller() -> None:
    core = make_core()
    call = Caller(core)
    out = call.invite(0.0)
    assert statuses(out) == [100]
    assert out[0].to_addr.tag is None
    (offered,) = core.events_received()
    assert isinstance(offered, CallOffered) and offered.call_id == "call-1"
    assert offered.invite.body.startswith(b"v=0")

    out = call.answered(0.1, SDP)
    assert statuses(out) == [200]
    ok = out[0]
    assert isinstance(ok, SipResponse)
    assert ok.body == SDP and ok.headers.get("content-type") == "application/sdp"
    assert ok.contact is not None and ok.contact.uri == "sip:voxlane@127.0.0.1:5060"
    assert ok.to_addr.tag == "tag1" and ok.cseq.method == "INVITE"
    assert core.dialog("call-1").state is DialogState.ANSWERED

    assert call.ack(0.2) == []
    assert core.events_received() == [CallConfirmed("call-1")]
    assert core.dialog("call-1").state is DialogState.CONFIRMED
    assert core.next_deadline() is None  # nothing to retransmit

    out = call.bye(5.0)
    assert statuses(out) == [200] and out[0].cseq.method == "BYE"
    assert core.events_received() == [CallTerminated("call-1", "bye")]
    assert core.active_calls == 0
    # A retransmitted BYE gets the same 200; after the linger time the dialog is gone.
    assert statuses(call.bye(5.5)) == [200]
    assert core.next_deadline() == pytest.approx(5.0 + 32)
    core.handle_timeout(37.0)
    assert core.statistics().dialogs == 0
    assert statuses(call.bye(38.0)) == [481]


def test_200_retransmitted_until_ack() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    call.answered(0.0, SDP)
    times = []
    now = 0.0
    while (deadline := core.next_deadline()) is not None and deadline < 10:
        now = deadline
        core.handle_timeout(now)
        if statuses(sent(core)) == [200]:
            times.append(now)
    assert times == pytest.approx([0.5, 1.5, 3.5, 7.5])  # T1, 2T1, 4T1, then capped at T2
    assert call.ack(now) == []
    assert core.next_deadline() is None


def test_no_ack_gives_up_after_64_t1_and_sends_bye() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    call.answered(0.0, SDP)
    core.events_received()
    count, now = 0, 0.0
    while (deadline := core.next_deadline()) is not None and deadline < 32:
        now = deadline
        core.handle_timeout(now)
        count += len(sent(core))
    assert count == 10  # 0.5 1.5 3.5 7.5 11.5 15.5 19.5 23.5 27.5 31.5
    core.handle_timeout(32.0)
    (bye,) = sent(core)
    assert isinstance(bye, SipRequest) and bye.method == "BYE"
    assert bye.uri == "sip:sipp@127.0.0.1:5061"
    assert bye.from_addr.tag == "tag1" and bye.to_addr.tag == "4242SIPpTag001"
    assert bye.cseq.number == 1
    # The call is over at the ACK timeout, not when its BYE completes.
    assert core.events_received() == [CallTerminated("call-1", "no_ack")]
    call.reply_to(bye, 200, 32.1)
    assert core.events_received() == []
    assert core.dialog("call-1").state is DialogState.TERMINATED


def test_unacked_invite_frees_its_call_slot_exactly_at_the_ack_timeout() -> None:
    """Issue #10 item 7: a 200 OK never ACKed (a spoofed INVITE) held its slot through
    32 s of BYE retransmissions more; now the slot is free at 64·T1 and the BYE that goes
    on retransmitting no longer counts."""
    core = make_core(max_calls=1)
    spoofed = Caller(core, call_id="spoofed")
    spoofed.invite(0.0)
    spoofed.answered(0.0, SDP)
    core.events_received()
    timeout = 64 * 0.5
    while (deadline := core.next_deadline()) is not None and deadline < timeout:
        core.handle_timeout(deadline)
        sent(core)
    refused = Caller(core, call_id="early").invite(timeout - 0.001)
    assert statuses(refused) == [503] and refused[0].headers.get("retry-after") == "5"
    core.handle_timeout(timeout)
    assert statuses(sent(core)) == ["BYE"]
    assert core.events_received() == [CallTerminated("spoofed", "no_ack")]
    assert core.active_calls == 0 and core.dialog("spoofed").state is DialogState.TERMINATING
    assert statuses(Caller(core, call_id="next").invite(timeout)) == [100]
    # The unanswered BYE keeps retransmitting for 64·T1 on its own, then gives up.
    byes, now = 0, timeout
    while (deadline := core.next_deadline()) is not None and deadline <= 2 * timeout:
        now = deadline
        core.handle_timeout(now)
        byes += statuses(sent(core)).count("BYE")
        assert core.active_calls == 1  # "next" only
    assert byes > 5 and core.dialog("spoofed").state is DialogState.TERMINATED
    assert [e for e in core.events_received() if isinstance(e, CallTerminated)] == []


def test_retransmitted_invite_gets_last_response() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    assert statuses(call.invite(0.3)) == [100]
    call.answered(0.4, SDP)
    assert statuses(call.invite(0.45)) == [200]
    assert core.statistics().calls_total == 1
    assert [type(e) for e in core.events_received()] == [CallOffered]


def test_cancel_before_answer() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    core.events_received()
    out = call.cancel(1.0)
    assert statuses(out) == [200, 487]
    assert core.events_received() == [CallTerminated("call-1", "cancel")]
    assert core.active_calls == 0
    assert out[0].cseq.method == "CANCEL" and out[1].cseq.method == "INVITE"
    assert out[1].to_addr.tag == "tag1"
    with pytest.raises(DialogStateError, match=r"APP_ANSWER.*REJECTED"):
        core.answer("call-1", SDP, 1.1)
    # 487 retransmitted until the ACK; the ACK ends the call.
    core.handle_timeout(1.5)
    assert statuses(sent(core)) == [487]
    assert call.send("ACK", 1, 1.6, to_tag="tag1", branch=call.branch) == []
    assert core.events_received() == []
    assert core.dialog("call-1").state is DialogState.TERMINATED
    assert statuses(call.cancel(1.7)) == [200]  # retransmitted CANCEL


def test_cancel_after_answer_has_no_effect_and_unknown_cancel_is_481() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    call.answered(0.1, SDP)
    assert statuses(call.cancel(0.2)) == [200]
    assert core.dialog("call-1").state is DialogState.ANSWERED
    other = Caller(core, call_id="nope")
    assert statuses(other.cancel(0.3)) == [481]


def test_hangup_sends_bye_and_retransmits_until_answer() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    call.answered(0.0, SDP)
    call.ack(0.1)
    core.events_received()
    core.hangup("call-1", 10.0, reason="agent_done")
    (bye,) = sent(core)
    assert isinstance(bye, SipRequest) and bye.method == "BYE"
    assert bye.top_via.branch == "z9hG4bK-tag1-1" and bye.top_via.has_rport
    assert core.dialog("call-1").state is DialogState.TERMINATING
    core.handle_timeout(10.5)
    core.handle_timeout(11.5)
    assert statuses(sent(core)) == ["BYE", "BYE"]
    call.reply_to(bye, 100, 11.6)  # provisional: keep going, at T2
    call.reply_to(bye, 200, 11.7)
    assert core.events_received() == [CallTerminated("call-1", "agent_done")]
    core.hangup("call-1", 12.0)  # idempotent
    assert sent(core) == []


def test_hangup_bye_times_out() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    call.answered(0.0, SDP)
    call.ack(0.0)
    core.hangup("call-1", 0.0)
    sent(core)
    core.events_received()
    now = 0.0
    while (deadline := core.next_deadline()) is not None and deadline <= 32:
        now = deadline
        core.handle_timeout(now)
    assert now == pytest.approx(32.0)
    assert core.events_received() == [CallTerminated("call-1", "hangup")]


def test_hangup_before_ack_waits_for_ack() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    call.answered(0.0, SDP)
    core.hangup("call-1", 0.1)
    assert sent(core) == []  # §15: no BYE before the ACK
    (bye,) = call.ack(0.2)
    assert isinstance(bye, SipRequest) and bye.method == "BYE"


def test_hangup_before_answer_declines() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    core.hangup("call-1", 0.1)
    assert statuses(sent(core)) == [603]


def test_bye_crossing_ours() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    call.answered(0.0, SDP)
    call.ack(0.0)
    core.events_received()
    core.hangup("call-1", 1.0)
    sent(core)
    assert statuses(call.bye(1.01)) == [200]
    assert core.events_received() == [CallTerminated("call-1", "hangup")]


def test_in_dialog_options_unknown_and_unsupported_methods() -> None:
    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    call.answered(0.0, SDP)
    call.ack(0.0)
    out = call.send("OPTIONS", 2, 1.0, to_tag="tag1")
    assert statuses(out) == [200] and "BYE" in (out[0].headers.get("allow") or "")
    out = call.send("INFO", 3, 1.0, to_tag="tag1")
    assert statuses(out) == [405] and out[0].headers.get("allow")
    assert statuses(call.send("FOO", 4, 1.0, to_tag="tag1")) == [501]
    assert statuses(call.send("OPTIONS", 3, 1.0, to_tag="tag1")) == [500]  # CSeq went back
    assert statuses(call.send("BYE", 9, 1.0, to_tag="wrong")) == [481]
    reinvite = call.send("INVITE", 10, 2.0, to_tag="tag1")
    assert statuses(reinvite) == [200] and reinvite[0].body == SDP
    assert core.dialog("call-1").state is DialogState.CONFIRMED


def test_out_of_dialog_requests() -> None:
    core = make_core()
    stranger = Caller(core, call_id="x")
    assert statuses(stranger.send("OPTIONS", 1, 0.0)) == [200]
    assert statuses(stranger.send("BYE", 1, 0.0, to_tag="t")) == [481]
    assert statuses(stranger.send("INVITE", 1, 0.0, to_tag="t")) == [481]
    assert statuses(stranger.send("REGISTER", 1, 0.0)) == [405]
    assert statuses(stranger.send("BREW", 1, 0.0)) == [501]
    assert stranger.send("ACK", 1, 0.0) == []
    assert core.statistics().dialogs == 0


def test_capacity_and_allowlist() -> None:
    core = make_core(max_calls=1)
    Caller(core, call_id="a").invite(0.0)
    out = Caller(core, call_id="b").invite(0.0)
    assert statuses(out) == [503] and out[0].headers.get("retry-after") == "5"
    core.hangup("a", 0.1)  # 603: no longer active, capacity is free again
    sent(core)
    assert statuses(Caller(core, call_id="c").invite(0.2)) == [100]

    guarded = make_core(allowed=("10.0.0.0/8",))
    assert statuses(Caller(guarded).invite(0.0)) == [403]
    assert guarded.statistics().forbidden == 1
    assert statuses(Caller(make_core(allowed=("127.0.0.1",))).invite(0.0)) == [100]


def test_same_call_id_other_caller_is_loop_detected() -> None:
    core = make_core()
    Caller(core, call_id="a").invite(0.0)
    assert statuses(Caller(core, call_id="a", from_tag="other").invite(0.0)) == [482]


def test_unknown_call_and_illegal_app_events() -> None:
    core = make_core()
    with pytest.raises(UnknownCallError):
        core.answer("nope", SDP, 0.0)
    dialog = UasDialog(
        parse_message_request(sipp_invite()),
        CALLER,
        0.0,
        config=DialogConfig(local_host="127.0.0.1", local_port=5060),
        local_tag="t",
    )
    dialog.answer(SDP, 0.0)
    with pytest.raises(DialogStateError) as info:
        dialog.answer(SDP, 0.1)
    assert (info.value.event, info.value.state) == ("APP_ANSWER", "ANSWERED")
    with pytest.raises(ValueError):
        dialog.reject(200, 0.0)


def test_transition_table_is_closed() -> None:
    states = set(DialogState)
    assert set(TRANSITIONS) == states
    for targets in TRANSITIONS.values():
        assert set(targets.values()) <= states


def test_rport_and_received_routing() -> None:
    core = make_core()
    data = sipp_invite().replace(b"branch=z9hG4bK-4242-1-0", b"branch=z9hG4bK-r;rport")
    core.receive_datagram(data, ("198.51.100.9", 40000), 0.0)
    ((raw, addr),) = core.datagrams_to_send()
    assert addr == ("198.51.100.9", 40000)
    resp = parse_message(raw)
    assert resp.top_via.received == "198.51.100.9" and resp.top_via.rport == 40000
    core.receive_datagram(sipp_invite(call_id="2"), ("198.51.100.9", 40001), 0.0)
    ((raw, addr),) = core.datagrams_to_send()
    assert addr == ("198.51.100.9", 5061)  # no rport: received IP, Via port


def parse_message_request(data: bytes) -> SipRequest:
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    return msg


def test_bye_goes_out_even_with_a_broken_contact() -> None:
    core = make_core()
    data = sipp_invite(call_id="bc").replace(
        b"Contact: sip:sipp@127.0.0.1:5061", b"Contact: <sip:broken"
    )
    core.receive_datagram(data, CALLER, 0.0)
    sent(core)
    core.answer("bc", SDP, 0.0)
    core.hangup("bc", 0.0)
    core.handle_timeout(32.0)  # no ACK ever: give up, then BYE to the From URI
    (bye,) = [m for m in sent(core) if isinstance(m, SipRequest)]
    assert bye.method == "BYE" and bye.uri == "sip:sipp@127.0.0.1:5061"
    assert core.statistics().internal_errors == 0


def test_offer_answer_with_sdp_module() -> None:
    from voxlane.transports.sip import NoCommonCodecError, build_answer, negotiate, parse_sdp

    core = make_core()
    call = Caller(core)
    call.invite(0.0)
    (offered,) = core.events_received()
    assert isinstance(offered, CallOffered)
    chosen = negotiate(parse_sdp(offered.invite.body))
    body = build_answer(chosen, local_ip="127.0.0.1", local_port=40000, session_id=1)
    (ok,) = call.answered(0.1, body)
    assert negotiate(parse_sdp(ok.body)).remote_port == 40000

    # An offer without G.711 is refused with 488 by the core itself, before any dialog
    # (tests/sip/test_dialog_limits.py): the application never sees it.
    data = sipp_invite(call_id="opus-only").replace(b"RTP/AVP 0", b"RTP/AVP 9")
    with pytest.raises(NoCommonCodecError):
        negotiate(parse_sdp(data.split(b"\r\n\r\n", 1)[1]))
    core.receive_datagram(data, CALLER, 0.0)
    assert statuses(sent(core)) == [488]
    assert core.events_received() == [] and core.statistics().dialogs == 1


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        ((b"Max-Forwards: 70", b"Require: 100rel\r\nMax-Forwards: 70"), 420),
        ((b"Content-Type: application/sdp", b"Content-Type: text/plain"), 415),
        ((b"Content-Length:   129", b"Content-Length: 0"), 488),
    ],
)
def test_invites_we_cannot_take(edit: tuple[bytes, bytes], status: int) -> None:
    core = make_core()
    core.receive_datagram(sipp_invite().replace(*edit), CALLER, 0.0)
    (resp,) = sent(core)
    assert isinstance(resp, SipResponse) and resp.status == status
    if status == 420:
        assert resp.headers.get("unsupported") == "100rel"
    assert core.events_received() == [] and core.statistics().dialogs == 0
