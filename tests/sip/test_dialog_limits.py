"""What an INVITE can make the SIP core keep, pure and on virtual time (``now`` passed in).

* An offer with no codec we speak is refused statelessly by the core (488, like an
  unusable media address), so it never becomes a dialog that lingers for 64·T1 while a
  488 is retransmitted to a possibly spoofed source; so is an SDP that does not parse
  (400). The application never sees either.
* The dialogs the core keeps in all (active, or ended and absorbing retransmissions) are
  bounded by ``EndpointConfig.max_dialogs`` (default ``max(64, 8 * max_calls)``): past it,
  a new INVITE gets 503 with Retry-After, statelessly.
"""

from __future__ import annotations

import itertools

import pytest

from voxlane.transports.sip import (
    CallOffered,
    DialogConfig,
    EndpointConfig,
    SipEndpointCore,
    SipResponse,
    negotiate,
    parse_sdp,
)

from .messages import sipp_invite
from .uac import CALLER, Caller, make_core, sent, statuses

DIALOG = DialogConfig(local_host="127.0.0.1", local_port=5060)


def run_timers(core: SipEndpointCore, until: float, now: float = 0.0) -> float:
    """Virtual time: run every core timer due up to ``until``; returns the new now."""
    for _ in range(10_000):
        deadline = core.next_deadline()
        if deadline is None or deadline > until:
            return until
        now = max(now, deadline)
        core.handle_timeout(now)
        core.datagrams_to_send()
    raise AssertionError("timers still due")


def opus_only(call_id: str) -> bytes:
    return sipp_invite(call_id=call_id, branch=f"z9hG4bK-{call_id}").replace(
        b"RTP/AVP 0\r\na=rtpmap:0 PCMU/8000", b"RTP/AVP 96\r\na=rtpmap:96 opus/48000/2"
    )


# -- offers with no common codec: refused statelessly ------------------------------------


def test_an_offer_with_no_common_codec_is_refused_statelessly() -> None:
    core = make_core()
    for i in range(10):  # a burst of them, each retransmitted once
        for now in (0.0, 0.5):
            core.receive_datagram(opus_only(f"opus-{i}"), CALLER, now)
            (refused,) = sent(core)
            assert isinstance(refused, SipResponse) and refused.status == 488
            warning = refused.headers.get("warning") or ""
            assert warning.startswith('305 voxlane "no PCMU/PCMA 8 kHz'), warning
    assert core.events_received() == []  # the runner and the worker never see them
    stats = core.statistics()
    assert stats.dialogs == 0 and stats.codec_refused == 20 and stats.calls_total == 0
    assert core.next_deadline() is None  # nothing retransmitted, nothing lingering
    core.handle_timeout(40.0)
    assert core.datagrams_to_send() == []
    # Its ACK is absorbed; a call with a codec we speak is still taken.
    caller = Caller(core)
    assert statuses(caller.invite(41.0)) == [100]
    (offer,) = core.events_received()
    assert isinstance(offer, CallOffered)
    assert negotiate(parse_sdp(offer.invite.body)).encoding == "PCMU"


def test_an_unparsable_sdp_is_refused_400_statelessly() -> None:
    core = make_core()
    data = sipp_invite().replace(b"v=0\r\n", b"v=1\r\n")
    core.receive_datagram(data, CALLER, 0.0)
    (refused,) = sent(core)
    assert isinstance(refused, SipResponse) and refused.status == 400
    assert "v=0" in (refused.headers.get("warning") or "")
    assert core.events_received() == [] and core.next_deadline() is None
    stats = core.statistics()
    assert stats.dialogs == 0 and stats.sdp_refused == 1


# -- the bound on dialogs ---------------------------------------------------------------


def test_dialog_limit_default_and_validation() -> None:
    assert EndpointConfig(dialog=DIALOG).dialog_limit == 80  # max_calls 10
    assert EndpointConfig(dialog=DIALOG, max_calls=2).dialog_limit == 64
    assert EndpointConfig(dialog=DIALOG, max_calls=100).dialog_limit == 800
    assert EndpointConfig(dialog=DIALOG, max_calls=2, max_dialogs=5).dialog_limit == 5
    with pytest.raises(ValueError, match="max_dialogs"):
        EndpointConfig(dialog=DIALOG, max_calls=4, max_dialogs=3)


def bounded_core(max_calls: int = 2, max_dialogs: int | None = 4) -> SipEndpointCore:
    tags = itertools.count(1)
    config = EndpointConfig(
        dialog=DIALOG, max_calls=max_calls, max_dialogs=max_dialogs, retry_after_s=7
    )
    return SipEndpointCore(config, token_factory=lambda: f"tag{next(tags)}")


def test_ended_dialogs_count_against_the_bound_until_they_expire() -> None:
    """Calls the application rejected are no longer active (no call slot) but their
    dialogs stay to retransmit the final response and absorb the ACK: at the bound a
    new INVITE gets 503 + Retry-After, statelessly, until they expire."""
    core = bounded_core()
    for i in range(4):
        assert statuses(Caller(core, call_id=f"c{i}").invite(0.0)) == [100]
        core.reject(f"c{i}", 486, 0.0)
        assert statuses(sent(core)) == [486]
    core.events_received()
    assert core.active_calls == 0 and core.statistics().dialogs == 4
    (full,) = Caller(core, call_id="fifth").invite(1.0)
    assert isinstance(full, SipResponse) and full.status == 503
    assert full.headers.get("retry-after") == "7"
    assert core.events_received() == []
    stats = core.statistics()
    assert stats.dialogs == 4 and stats.dialogs_full == 1 and stats.busy == 0
    # A retransmitted INVITE of a kept dialog still gets that dialog's answer.
    assert statuses(Caller(core, call_id="c0").invite(1.5)) == [486]
    # Once they have expired (virtual time), calls are taken again.
    now = run_timers(core, 200.0)
    assert core.statistics().dialogs == 0
    assert statuses(Caller(core, call_id="later").invite(now)) == [100]
    assert isinstance(core.events_received()[0], CallOffered)


def test_expired_dialogs_are_forgotten_at_the_bound_even_before_their_timer_ran() -> None:
    core = bounded_core(max_calls=1, max_dialogs=1)
    Caller(core, call_id="gone").invite(0.0)
    core.reject("gone", 486, 0.0)
    Caller(core, call_id="gone").send("ACK", 1, 0.1, branch="z9hG4bK-gone-inv")
    sent(core)
    # The timer that would forget it has not run (the loop was busy): the INVITE that
    # finds the bound reached forgets expired dialogs first.
    assert statuses(Caller(core, call_id="next").invite(500.0)) == [100]
    assert core.statistics().dialogs == 1 and core.statistics().dialogs_full == 0


def test_a_flood_of_rejected_invites_keeps_the_dialogs_bounded() -> None:
    """The worker rejects calls it cannot take (503) through the core, each leaving a
    dialog for 64·T1: a spoofed flood used to grow ``_dialogs`` without limit."""
    core = bounded_core(max_calls=1, max_dialogs=None)  # the default: 64
    limit = core.config.dialog_limit
    for i in range(500):
        now = i * 0.01
        core.receive_datagram(sipp_invite(call_id=f"spoof-{i}", branch=f"z9hG4bK-{i}"), CALLER, now)
        for event in core.events_received():
            if isinstance(event, CallOffered):
                core.reject(event.call_id, 503, now)  # the application: full
        for message in sent(core):
            if isinstance(message, SipResponse) and message.status == 503:
                assert message.headers.get("retry-after") == "7"
        run_timers(core, now, now)
        assert core.statistics().dialogs <= limit
    stats = core.statistics()
    assert stats.calls_total == limit and stats.dialogs_full == 500 - limit
    assert stats.internal_errors == 0
