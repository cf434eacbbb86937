"""The asyncio SIP server against the real sipp on 127.0.0.1: every way a call ends.

Each test starts a :class:`SipServer` in-process on a real event loop, places calls with
sipp (bounded, killed by PID if it overruns), then closes the server (bounded) and reads
the per-call reports. Skipped when sipp (Debian ``sip-tester``) is not installed.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from pathlib import Path
from typing import Any

import pytest

from voxlane import Agent
from voxlane.aio.ledger import LEDGER
from voxlane.chat import ChatContext
from voxlane.runners.sip_server import Providers, SipServer, SipServerConfig, serve_sip
from voxlane.testing.fakes import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD

from .corpus import CORPUS
from .recording import record_sendto
from .sipp import HAVE_SIPP, HOST, prepare_workdir, run_sipp

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_time,
    pytest.mark.skipif(not HAVE_SIPP, reason="sipp (sip-tester) not installed"),
]

LONG_REPLY = ("Certainly. We have a table for two at seven thirty tonight, by the window, "
              "and I can also offer eight fifteen if that suits you better.")


class Greeter(Agent):
    """Greets (unless told not to) and answers every turn with a long reply (fake LLM)."""

    def __init__(self, greet: bool = True) -> None:
        super().__init__(instructions="You answer calls for a restaurant.")
        self.greet = greet

    async def on_enter(self) -> None:
        if self.greet:
            self.session.say("Hello!")


class HangsUp(Agent):
    """Says goodbye, then ends the call itself (the session closes first)."""

    def __init__(self) -> None:
        super().__init__(instructions="Say goodbye.")

    async def on_enter(self) -> None:
        await self.session.say("Thank you for calling. Goodbye!", allow_interruptions=False)
        self.session.shutdown()


def long_replies(_: ChatContext) -> FakeReply:
    return FakeReply(LONG_REPLY)


def providers() -> Providers:
    return Providers(stt=FakeSTT(), vad=FakeVAD(), llm=FakeLLM(responder=long_replies),
                     tts=FakeTTS())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_workdir(tmp_path_factory.mktemp("sipp"))


async def start(tmp_path: Path, agent: type[Agent] = Greeter, **config: Any) -> SipServer:
    cfg = SipServerConfig(host=HOST, port=0, reports_dir=tmp_path / "reports", **config)
    return await serve_sip(agent, providers, cfg)


def reports(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "reports").glob("*.json"))]


async def wait_idle(server: SipServer, timeout_s: float = 5.0) -> None:
    """Wait (bounded) until the server has no call left: after sipp's last 200 to a BYE,
    the session's close and the report still take a few milliseconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while server.active_calls and loop.time() < deadline:
        await asyncio.sleep(0.02)


async def finish(server: SipServer) -> None:
    await server.aclose()
    assert server.active_calls == 0 and server.live_sessions() == []
    assert not server.abandoned
    stats = server.statistics()
    assert stats.core_internal_errors == 0 and stats.listener_errors == 0
    assert LEDGER.count_open() == 0


def assert_clean_close(report: dict[str, Any], budget_s: float = 4.0) -> None:
    close = report["close"]
    assert close["open_connections_after"] == 0
    assert close["duration_ms"] <= budget_s * 1000
    assert close["abandoned"] == []


async def test_caller_hangs_up_mid_reply(tmp_path: Path, workdir: Path) -> None:
    server = await start(tmp_path, rtp_timeout_s=5.0)
    try:
        result = await run_sipp(workdir, "uac_bye_mid_reply.xml", server.port)
    finally:
        await finish(server)
    assert result.returncode == 0, result.errors or result.stdout
    (report,) = reports(tmp_path)
    assert report["close"]["reason"] == "participant_disconnected"
    assert_clean_close(report)
    sip = report["sip"]
    assert sip["ended_by"] == "caller_bye" and sip["disconnect_reason"] == "hangup"
    assert sip["codec"] == "PCMU" and sip["answered"] and 5.0 < sip["talk_s"] < 8.0
    assert sip["rtp"]["packets_in"] > 100  # ~3.5 s of speech streamed in
    assert sip["rtp"]["packets_out"] > 25 and sip["rtp"]["loud_packets_out"] > 25
    users = [m for m in report["history"] if m["role"] == "user"]
    assert users, report["history"]
    last = report["history"][-1]
    # recorded as far as the caller heard it before hanging up (cut at a word)
    assert last["role"] == "assistant" and last["interrupted"]
    assert LONG_REPLY.startswith(last["text"]) and 0 < len(last["text"]) < len(LONG_REPLY)


async def test_cancel_before_answer_starts_no_session(tmp_path: Path, workdir: Path) -> None:
    server = await start(tmp_path, answer_delay_s=2.0)
    try:
        result = await run_sipp(workdir, "uac_cancel.xml", server.port)
        await wait_idle(server)
        assert server.active_calls == 0
        assert server.statistics().sessions_started == 0
    finally:
        await finish(server)
    assert result.returncode == 0, result.errors or result.stdout
    (report,) = reports(tmp_path)
    assert report["session_id"] is None
    assert report["sip"]["ended_by"] == "cancel"
    assert server.statistics().calls_answered == 0


async def test_silent_caller_times_out_and_gets_bye(tmp_path: Path, workdir: Path) -> None:
    server = await start(tmp_path, rtp_timeout_s=1.0)
    try:
        result = await run_sipp(workdir, "uac_no_bye.xml", server.port)
    finally:
        await finish(server)
    assert result.returncode == 0, result.errors or result.stdout  # sipp got and answered BYE
    (report,) = reports(tmp_path)
    assert report["close"]["reason"] == "participant_disconnected"
    assert_clean_close(report)
    assert report["sip"]["ended_by"] == "rtp_timeout"
    assert report["sip"]["disconnect_reason"] == "timeout"


async def test_agent_hangs_up_and_caller_answers_bye(tmp_path: Path, workdir: Path) -> None:
    server = await start(tmp_path, agent=HangsUp)
    try:
        result = await run_sipp(workdir, "uac_answer_bye.xml", server.port)
    finally:
        await finish(server)
    assert result.returncode == 0, result.errors or result.stdout
    (report,) = reports(tmp_path)
    assert report["close"]["reason"] in ("drained", "user_initiated")
    assert_clean_close(report)
    assert report["sip"]["ended_by"] == "agent_hangup"
    assert report["sip"]["rtp"]["loud_packets_out"] > 10


async def test_fifty_concurrent_calls_random_hangups(tmp_path: Path, workdir: Path) -> None:
    server = await start(tmp_path, max_calls=60, rtp_timeout_s=5.0)
    try:
        result = await run_sipp(workdir, "uac_random_bye.xml", server.port, calls=50,
                                limit=50, rate=50, timeout_s=40)
        await wait_idle(server)
        assert server.live_sessions() == [] and server.active_calls == 0
    finally:
        await finish(server)
    assert result.returncode == 0, result.errors or result.stdout[-3000:]
    found = reports(tmp_path)
    assert len(found) == 50
    assert server.statistics().peak_active >= 30  # most calls overlapped
    for report in found:
        assert report["close"]["reason"] == "participant_disconnected"
        assert_clean_close(report)
        assert report["sip"]["ended_by"] == "caller_bye"


async def test_garbage_never_hurts_a_live_call(tmp_path: Path, workdir: Path) -> None:
    server = await start(tmp_path, rtp_timeout_s=5.0)
    rng = random.Random(5)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)

    async def spray() -> int:
        sent = 0
        for round_ in range(40):
            await asyncio.sleep(0.1)
            targets = [server.port, *(s.local_port for s in server.rtp_streams())]
            for port in targets:
                for _, data, _ in CORPUS if round_ % 10 == 0 else []:
                    sock.sendto(data, (HOST, port))
                    sent += 1
                for _ in range(5):
                    size = rng.choice([0, 1, 12, 40, 172, 1400])
                    sock.sendto(rng.randbytes(size), (HOST, port))
                    sent += 1
        return sent

    try:
        sprayer = asyncio.ensure_future(spray())
        result = await run_sipp(workdir, "uac_bye_mid_reply.xml", server.port)
        await asyncio.wait({sprayer}, timeout=10)
        assert sprayer.done() and sprayer.result() > 200
    finally:
        sock.close()
        await finish(server)
    assert result.returncode == 0, result.errors or result.stdout
    (report,) = reports(tmp_path)
    assert report["close"]["reason"] == "participant_disconnected"
    assert_clean_close(report)
    assert report["sip"]["ended_by"] == "caller_bye"
    assert report["sip"]["rtp"]["garbage"] > 0
    assert report["sip"]["rtp"]["loud_packets_out"] > 25


async def test_call_longer_than_max_duration_is_hung_up(tmp_path: Path, workdir: Path) -> None:
    server = await start(tmp_path, max_call_s=1.5, rtp_timeout_s=5.0)
    try:
        result = await run_sipp(workdir, "uac_answer_bye.xml", server.port)
    finally:
        await finish(server)
    assert result.returncode == 0, result.errors or result.stdout  # sipp got our BYE
    (report,) = reports(tmp_path)
    assert report["sip"]["ended_by"] == "max_duration"
    assert report["close"]["reason"] == "participant_disconnected"
    assert_clean_close(report)


def broken_agent() -> Agent:
    raise RuntimeError("agent factory bug")


async def test_agent_factory_error_hangs_up_and_reports(tmp_path: Path, workdir: Path) -> None:
    cfg = SipServerConfig(host=HOST, port=0, reports_dir=tmp_path / "reports")
    server = await serve_sip(broken_agent, providers, cfg)
    try:
        result = await run_sipp(workdir, "uac_answer_bye.xml", server.port)
        await wait_idle(server)
    finally:
        await finish(server)
    # Our BYE follows the ACK at once; sipp may see it before its scenario waits for it
    # ("unexpected BYE"), which still proves the call was hung up.
    assert result.returncode == 0 or "BYE" in result.errors, result.errors or result.stdout
    (report,) = reports(tmp_path)
    assert report["session_id"] is None and report["sip"]["ended_by"] == "error"
    assert server.statistics().call_errors == 1


async def test_unacked_call_frees_its_slot_at_the_ack_timeout(tmp_path: Path,
                                                               workdir: Path) -> None:
    """Issue #10 item 7, with real sipp: a caller that never ACKs (nor answers our BYE)
    held the only slot through the BYE's retransmissions and was reported "unknown"; the
    next caller got 503. Now the slot is free at 64·T1 and the report says no_ack."""
    server = await start(tmp_path, max_calls=1, t1=0.1, rtp_timeout_s=5.0)
    loop = asyncio.get_running_loop()
    try:
        t0 = loop.time()
        first = await run_sipp(workdir, "uac_no_ack.xml", server.port, timeout_s=20)
        gave_up_after = loop.time() - t0
        # Our BYE (at 64·T1 = 6.4 s) is still being retransmitted to the first caller.
        second = await run_sipp(workdir, "uac_pcap_bye.xml", server.port)
        await wait_idle(server)
    finally:
        await finish(server)
    assert first.returncode == 0, first.errors or first.stdout  # it got the BYE
    assert 6.0 <= gave_up_after < 12.0
    assert second.returncode == 0, second.errors or second.stdout  # accepted, not 503
    by_end = {r["sip"]["ended_by"]: r for r in reports(tmp_path)}
    assert set(by_end) == {"no_ack", "caller_bye"}
    unacked = by_end["no_ack"]
    assert unacked["session_id"] is None and not unacked["sip"]["answered"]
    assert unacked["sip"]["dialog_reason"] == "no_ack"
    assert_clean_close(by_end["caller_bye"])


async def test_media_address_outside_the_allowlist_is_answered_and_never_sent_to(
        tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #10 item 6 (after review), with real sipp: the SIP source (127.0.0.1) is
    allowed, the SDP's media address (127.0.0.2, where sipp's RTP also comes from) is
    not. The call is taken — it used to get 488, which made NAT latching impossible with
    --allow — but no RTP ever goes to 127.0.0.2, and sipp's RTP from there is not heard:
    the stream never latches, our audio is counted as unsent."""
    sent_to = record_sendto(monkeypatch)
    server = await start(tmp_path, allowed_sources=("127.0.0.1/32",), rtp_timeout_s=5.0)
    try:
        result = await run_sipp(workdir, "uac_pcap_bye.xml", server.port, media_ip="127.0.0.2")
        await wait_idle(server)
    finally:
        await finish(server)
    assert result.returncode == 0, result.errors or result.stdout  # 200 OK, then our 200
    assert server.statistics().calls_answered == 1
    assert sent_to and all(a is not None and a[0] == HOST for a in sent_to), sent_to
    (report,) = reports(tmp_path)
    sip = report["sip"]
    assert sip["answered"] and sip["ended_by"] == "caller_bye"
    assert sip["rtp"]["packets_out"] == 0 and sip["rtp"]["packets_in"] == 0
    assert sip["rtp"]["frames_unsent"] > 0  # the greeting had nowhere to go
    assert_clean_close(report)


async def test_natted_caller_with_a_disallowed_private_sdp_address_is_latched(
        tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The NAT case --allow used to break, with real sipp: its SDP names a private
    address outside the allowlist (127.0.0.5), its RTP comes from the INVITE's source IP
    (127.0.0.1, allowed). Nothing is sent before that RTP arrives; then our RTP flows
    to the port it came from, and never to 127.0.0.5."""
    sent_to = record_sendto(monkeypatch)
    server = await start(tmp_path, allowed_sources=("127.0.0.1/32",), rtp_timeout_s=5.0)
    try:
        result = await run_sipp(workdir, "uac_nat_pcap_bye.xml", server.port,
                                keys={"sdp_ip": "127.0.0.5"})
        await wait_idle(server)
    finally:
        await finish(server)
    assert result.returncode == 0, result.errors or result.stdout
    assert sent_to and all(a is not None and a[0] == HOST for a in sent_to), sent_to
    (report,) = reports(tmp_path)
    sip = report["sip"]
    assert sip["answered"] and sip["ended_by"] == "caller_bye"
    assert sip["rtp"]["packets_in"] > 100  # sipp's speech, taken once latched
    # Our reply flowed, all of it to sipp's media port on 127.0.0.1 (sent_to above).
    assert sip["rtp"]["loud_packets_out"] > 25
    assert [m for m in report["history"] if m["role"] == "user"], report["history"]
    assert_clean_close(report)
