"""Malformed input: a corpus of bad datagrams, property-based fuzzing (hypothesis: it
shrinks what it finds) and the seeded mutation campaign of
:mod:`voxlane.testing.fuzz_sip` (protocol-aware, replayable by index; ``bench/fuzz.py``
runs it long).

The contracts under test: ``parse_message`` raises only SipParseError, the SDP code only
SdpError; ``SipEndpointCore.receive_datagram`` never raises, contains no internal error,
sends only datagrams that parse, to IP literals, with Retry-After on a 503, ends every
dialog when its timers run out, and keeps serving other calls.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from voxlane.testing.fuzz_sip import (
    SIP_CORPUS,
    CheckFailed,
    check_outgoing,
    run_sip_campaign,
    sip_case,
    sip_cases,
)
from voxlane.transports.sip import (
    CallOffered,
    CallTerminated,
    DialogStateError,
    SipEndpointCore,
    SipParseError,
    SipResponse,
    UnknownCallError,
    parse_message,
)

from .corpus import CORPUS
from .messages import COMPACT_INVITE, FOLDED_OPTIONS, linphone_invite, sipp_invite
from .uac import CALLER, Caller, make_core, statuses

VALID = [sipp_invite(), linphone_invite(), COMPACT_INVITE, FOLDED_OPTIONS, *SIP_CORPUS]


def assert_healthy(core: SipEndpointCore) -> list[tuple[bytes, tuple[str, int]]]:
    """No internal error, and everything queued for sending parses."""
    assert core.statistics().internal_errors == 0
    out = core.datagrams_to_send()
    for data, _ in out:
        parse_message(data)
    return out


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 25
    assert len({name for name, _, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("name", "data", "expect"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_case(name: str, data: bytes, expect: int | None) -> None:
    if expect is None or expect == 400:
        with pytest.raises(SipParseError):
            parse_message(data)
    core = make_core()
    core.receive_datagram(data, CALLER, 0.0)
    out = assert_healthy(core)
    got = [parse_message(d) for d, _ in out]
    assert [m.status for m in got if isinstance(m, SipResponse)] == (
        [] if expect is None else [expect]
    ), name
    if expect == 400:
        assert (got[0].headers.get("warning") or "").startswith("399 voxlane")


def test_calls_survive_the_whole_corpus() -> None:
    core = make_core()
    call = Caller(core, call_id="survivor")
    call.invite(0.0)
    for _, data, _ in CORPUS:
        core.receive_datagram(data, CALLER, 0.1)
    assert_healthy(core)
    call.answered(0.2, b"v=0\r\n")
    call.ack(0.3)
    for _, data, _ in CORPUS:
        core.receive_datagram(data, CALLER, 0.4)
    assert_healthy(core)
    assert statuses(call.bye(1.0)) == [200]
    assert CallTerminated("survivor", "bye") in core.events_received()
    assert core.statistics().malformed >= 25


# -- property-based fuzzing ---------------------------------------------------------


def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """Apply 1-4 random edits: flip, insert, delete, truncate, duplicate or drop a line."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(
                ["flip", "insert", "delete", "truncate", "dup", "drop", "crlf", "digit"]
            )
        )
        pos = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[pos : pos + draw(st.integers(1, 20))]
        elif op == "truncate":
            del buf[pos:]
        elif op in ("dup", "drop"):
            lines = bytes(buf).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            if op == "dup":
                lines.insert(i, lines[i])
            else:
                del lines[i]
            buf = bytearray(b"\r\n".join(lines))
        elif op == "crlf":
            buf[pos:pos] = draw(
                st.sampled_from(
                    [b"\r\n", b"\n", b"\r", b"\r\n\r\n", b" ", b":", b";", b"<", b'"', b","]
                )
            )
        elif op == "digit":
            buf[pos:pos] = str(draw(st.integers(-(2**40), 2**40))).encode()
    return bytes(buf)


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    return mutate(draw(st.sampled_from(VALID)), draw)


# VOXLANE_FUZZ_EXAMPLES=20000 for a long hunt; the default keeps the suite fast.
EXAMPLES = int(os.environ.get("VOXLANE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2000))
def test_parse_random_bytes(data: bytes) -> None:
    try:
        parse_message(data)
    except SipParseError:
        pass


@FUZZ
@given(mutated_messages())
def test_parse_mutated_messages(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    # Whatever parses re-serializes to something that parses to the same thing.
    again = parse_message(msg.to_bytes())
    assert type(again) is type(msg) and again.call_id == msg.call_id
    assert again.body == msg.body


@FUZZ
@given(st.lists(st.one_of(mutated_messages(), st.binary(max_size=300)), max_size=15))
def test_endpoint_never_raises_and_keeps_serving(datagrams: list[bytes]) -> None:
    core = make_core(max_calls=3)
    call = Caller(core, call_id="steady")
    assert statuses(call.invite(0.0)) == [100]
    for i, data in enumerate(datagrams):
        core.receive_datagram(data, CALLER, 0.01 * i)
        core.handle_timeout(0.01 * i)
    assert_healthy(core)
    # Calls that mutated INVITEs created are answered, hung up and timed out, so every
    # dialog path runs on fuzzed input (a broken Contact must not stop the BYE).
    for event in core.events_received():
        if isinstance(event, CallOffered) and event.call_id != "steady":
            core.answer(event.call_id, b"v=0\r\n", 0.5)
            core.hangup(event.call_id, 0.6)
    now = 0.6
    while (deadline := core.next_deadline()) is not None and deadline < 0.9:
        now = deadline
        core.handle_timeout(now)
    assert_healthy(core)
    call.answered(1.0, b"v=0\r\n")
    call.ack(1.1)
    assert statuses(call.bye(2.0)) == [200]
    assert CallTerminated("steady", "bye") in core.events_received()


CALL_IDS = ["c1", "c2", "c3"]


class EndpointMachine(RuleBasedStateMachine):
    """Random interleavings of caller requests, app commands, garbage and time."""

    def __init__(self) -> None:
        super().__init__()
        self.core = make_core(max_calls=2)
        self.now = 0.0
        self.callers = {cid: Caller(self.core, call_id=cid) for cid in CALL_IDS}

    def _drain(self) -> None:
        for data, _ in self.core.datagrams_to_send():
            msg = parse_message(data)  # every datagram we send must parse
            if isinstance(msg, SipResponse) and msg.status == 200 and msg.cseq.method == "INVITE":
                self.callers[msg.call_id].to_tag = msg.to_addr.tag

    @rule(cid=st.sampled_from(CALL_IDS))
    def invite(self, cid: str) -> None:
        self.core.receive_datagram(
            sipp_invite(call_id=cid, branch=f"z9hG4bK-{cid}-inv"), CALLER, self.now
        )

    @rule(
        cid=st.sampled_from(CALL_IDS),
        method=st.sampled_from(["ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "INVITE"]),
        cseq=st.integers(1, 5),
        tagged=st.booleans(),
    )
    def request(self, cid: str, method: str, cseq: int, tagged: bool) -> None:
        caller = self.callers[cid]
        branch = caller.branch if method in ("CANCEL", "ACK") else None
        caller.send(method, cseq, self.now, to_tag=caller.to_tag if tagged else None, branch=branch)

    @rule(cid=st.sampled_from(CALL_IDS), command=st.sampled_from(["answer", "reject", "hangup"]))
    def app(self, cid: str, command: str) -> None:
        try:
            if command == "answer":
                self.core.answer(cid, b"v=0\r\n", self.now)
            elif command == "reject":
                self.core.reject(cid, 486, self.now)
            else:
                self.core.hangup(cid, self.now)
        except (DialogStateError, UnknownCallError):
            pass  # the documented refusals; anything else fails the test

    @rule(data=st.one_of(mutated_messages(), st.binary(max_size=200)))
    def garbage(self, data: bytes) -> None:
        self.core.receive_datagram(data, CALLER, self.now)

    @rule(dt=st.sampled_from([0.1, 0.5, 4.0, 33.0]))
    def advance(self, dt: float) -> None:
        self.now += dt
        self.core.handle_timeout(self.now)

    @precondition(lambda self: self.core.next_deadline() is not None)
    @rule()
    def jump_to_deadline(self) -> None:
        deadline = self.core.next_deadline()
        assert deadline is not None
        self.now = max(self.now, deadline)
        self.core.handle_timeout(self.now)

    @invariant()
    def healthy(self) -> None:
        self._drain()
        stats = self.core.statistics()
        assert stats.internal_errors == 0
        assert stats.calls_active <= 2


TestEndpointMachine = EndpointMachine.TestCase
TestEndpointMachine.settings = settings(
    max_examples=max(60, EXAMPLES // 5), stateful_step_count=40, deadline=None
)


@FUZZ
@given(st.lists(mutated_messages(), min_size=1, max_size=5))
def test_fuzzed_calls_run_to_their_end(datagrams: list[bytes]) -> None:
    core = make_core(max_calls=5)
    for data in datagrams:
        core.receive_datagram(data, CALLER, 0.0)
    offered = [e for e in core.events_received() if isinstance(e, CallOffered)]
    for event in offered:
        core.answer(event.call_id, b"v=0\r\n", 0.0)
    assert_healthy(core)
    now = 0.0
    while (deadline := core.next_deadline()) is not None:  # ACK timeout → BYE → give up
        assert deadline >= now
        now = deadline
        core.handle_timeout(now)
        assert_healthy(core)
    ended = [e for e in core.events_received() if isinstance(e, CallTerminated)]
    assert len(ended) == len(offered)
    assert core.statistics().dialogs == 0


# -- the seeded campaign (voxlane.testing.fuzz_sip) ------------------------------------

# VOXLANE_FUZZ_CASES / VOXLANE_FUZZ_SEED for a longer or another run (bench/fuzz.py too).
CAMPAIGN_CASES = int(os.environ.get("VOXLANE_FUZZ_CASES", "700"))
CAMPAIGN_SEED = int(os.environ.get("VOXLANE_FUZZ_SEED", "10"))


def test_seeded_campaign_holds_every_invariant() -> None:
    coverage: Counter[str] = Counter()
    report = run_sip_campaign(CAMPAIGN_SEED, CAMPAIGN_CASES, coverage=coverage)
    assert report.ok, report.as_dict()["failures"][:5]
    assert report.cases == CAMPAIGN_CASES
    # The mutations reach every layer, not just the parser's first line.
    assert coverage["sip_parsed"] > CAMPAIGN_CASES // 10, coverage
    assert coverage["sdp_negotiated"] and coverage["sdp_refused"] and coverage["offered"]
    for status in (200, 400, 488, 503):
        assert coverage[f"status_{status}"], (status, coverage)


def test_campaign_cases_replay_from_seed_and_index() -> None:
    cases = list(sip_cases(3, 1000))
    assert sip_case(3, 123) == cases[123]
    assert [c.data for c in sip_cases(4, 1000)] != [c.data for c in cases]
    datas = [c.data for c in cases]
    assert sum(d not in SIP_CORPUS for d in datas) > 900
    # The protocol-aware mutations show up: LF-only messages, folded lines, boundary
    # numbers, hostnames in c=, lying or doubled Content-Length, huge headers.
    for needle in (
        b"\n\n",
        b"\r\n ",
        b"4294967296",
        b"c=IN IP4 example.invalid",
        b"Content-Length: 1000",
        b"l: ",
        b"a" * 1000,
    ):
        assert any(needle in d for d in datas), needle


@pytest.mark.parametrize(
    ("datagram", "problem"),
    [
        (
            (b"SIP/2.0 503 Service Unavailable\r\n" + sipp_invite().split(b"\r\n", 1)[1]),
            "503 without Retry-After",
        ),
        (b"garbage", "does not parse"),
    ],
)
def test_campaign_checks_bite(datagram: bytes, problem: str) -> None:
    with pytest.raises(CheckFailed, match=problem):
        check_outgoing([(datagram, CALLER)])


def test_campaign_check_catches_a_hostname_destination() -> None:
    with pytest.raises(CheckFailed, match="addressed to"):
        check_outgoing([(sipp_invite(), ("example.invalid", 5060))])
