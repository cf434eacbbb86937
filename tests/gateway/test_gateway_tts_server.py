"""``/v1/tts`` against real peers: a client that stalls, one that reads slowly, one that
vanishes mid-synthesis, idle connections and the TTS connection cap.

espeak-ng is the voice here: it renders a long text in one fast subprocess, so the server
has megabytes to send at once, which is what fills a stalled client's buffers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from gateway_helpers import API_KEY, HEADERS, gateway, logged_problems, run
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

#: About 40 s of speech: 3.8 MB at 48 kHz, more than loopback socket buffers hold.
LONG_TEXT = "This sentence is spoken again and again so that the reply is long. " * 12


def synthesize(text: str, *, rid: str, rate: int = 48000) -> str:
    return json.dumps(
        {"type": "synthesize", "text": text, "voice": "espeak", "sample_rate": rate, "id": rid}
    )


@asynccontextmanager
async def small_buffer_client(url: str) -> AsyncIterator[ClientConnection]:
    """A real websocket client whose socket holds little: 4 KiB receive buffer, and the
    library stops reading the socket once one message waits unread (max_queue=1)."""
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    async with connect(
        url, sock=sock, additional_headers=HEADERS, max_queue=1, open_timeout=5, close_timeout=2
    ) as ws:
        yield ws


async def read_all(ws: ClientConnection, timeout: float = 20.0) -> tuple[list[Any], int]:
    """Read until the server closes; return the text events (parsed) and audio bytes."""
    events: list[Any] = []
    audio = 0
    async with asyncio.timeout(timeout):
        try:
            while True:
                msg = await ws.recv()
                if isinstance(msg, bytes):
                    audio += len(msg)
                else:
                    events.append(json.loads(msg))
        except ConnectionClosed:
            return events, audio


async def read_until(ws: ClientConnection, kind: str, timeout: float = 20.0) -> list[str]:
    """Read up to the first text event of type ``kind``; return the kinds seen."""
    kinds: list[str] = []
    async with asyncio.timeout(timeout):
        while not kinds or kinds[-1] != kind:
            msg = await ws.recv()
            kinds.append("audio" if isinstance(msg, bytes) else json.loads(msg)["type"])
    return kinds


async def served(url: str) -> None:
    """A fresh client gets a short request spoken in full."""
    async with connect(url, additional_headers=HEADERS, open_timeout=5) as ws:
        await ws.send(synthesize("Okay.", rid="ok", rate=16000))
        kinds = await read_until(ws, "synthesis.done")
        assert kinds[0] == "synthesis.started" and "audio" in kinds, kinds


async def wait_no_connections(server: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while server.statistics().live_connections:
            await asyncio.sleep(0.02)


def test_stalled_reader_gets_error_2014_and_close_1008_not_a_dead_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        # The client stalls 1.5 s: past the 0.3 s send timeout, well within the 8 s close
        # budget, so the error and the close frame reach it once it reads again.
        async with gateway(send_timeout_s=0.3, close_timeout_s=8.0) as server:
            async with small_buffer_client(server.tts_url) as ws:
                await ws.send(synthesize(LONG_TEXT, rid="long"))
                await ws.send(synthesize("Never spoken.", rid="queued"))
                await asyncio.sleep(1.5)
                events, audio = await read_all(ws)
                assert ws.close_code == 1008, (ws.close_code, events)
                assert ws.close_reason == "client too slow"
            assert events[0] == {"type": "synthesis.started", "id": "long", "sample_rate": 48000}
            assert events[-1]["type"] == "error" and events[-1]["code"] == 2014, events
            assert events[-1]["retryable"] is True
            assert [e["type"] for e in events] == ["synthesis.started", "error"]
            assert 0 < audio < 3_000_000  # cut off, not the whole reply
            record = server.connection_log[-1]
            assert record.close_reason == "slow_consumer" and record.close_code == 1008
            await wait_no_connections(server)
            await served(server.tts_url)

    run(main())
    assert not logged_problems(caplog), logged_problems(caplog)
    assert any("client too slow" in r.getMessage() for r in caplog.records)


def test_client_that_reads_slowly_but_steadily_gets_every_request() -> None:
    async def main() -> None:
        async with gateway(send_timeout_s=2.0) as server, small_buffer_client(server.tts_url) as ws:
            text = "A short reply, read slowly. " * 3
            await ws.send(synthesize(text, rid="1", rate=16000))
            await ws.send(synthesize(text, rid="2", rate=16000))
            done: list[str] = []
            async with asyncio.timeout(30):
                while len(done) < 2:
                    msg = await ws.recv()
                    await asyncio.sleep(0.01)  # slower than the server writes
                    if isinstance(msg, str) and json.loads(msg)["type"] == "synthesis.done":
                        done.append(json.loads(msg)["id"])
            assert done == ["1", "2"]
            # The same connection still answers.
            await ws.send(synthesize("Third.", rid="3", rate=16000))
            assert (await read_until(ws, "synthesis.done"))[0] == "synthesis.started"

    run(main())


@pytest.mark.parametrize("how", ["abort", "eof"])
def test_client_gone_mid_synthesis_is_not_an_error(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with gateway() as server:
            ws = await connect(server.tts_url, additional_headers=HEADERS, open_timeout=5)
            try:
                await ws.send(synthesize(LONG_TEXT, rid="cut"))
                kinds = await read_until(ws, "synthesis.started")
                assert kinds == ["synthesis.started"]
                assert isinstance(await asyncio.wait_for(ws.recv(), 10), bytes)
            finally:
                if how == "abort":
                    ws.transport.abort()  # RST: the process died
                else:
                    ws.transport.close()  # FIN, no close frame: the process exited
            await wait_no_connections(server)
            assert server.connection_log[-1].close_reason == "peer_gone"
            await served(server.tts_url)

    run(main())
    assert not logged_problems(caplog), logged_problems(caplog)


def test_idle_tts_connections_are_closed_with_2007() -> None:
    async def main() -> None:
        async with gateway(idle_timeout_s=0.5) as server:
            clients = [
                await connect(server.tts_url, additional_headers=HEADERS, open_timeout=5)
                for _ in range(5)
            ]
            try:
                # One of them is busy first: the idle timer starts when its request is done.
                await clients[0].send(synthesize("Hello there.", rid="h", rate=16000))
                assert (await read_until(clients[0], "synthesis.done"))[0] == "synthesis.started"
                for ws in clients:
                    events, _ = await read_all(ws, timeout=10)
                    assert events == [
                        {
                            "type": "error",
                            "code": 2007,
                            "message": "session closed due to inactivity",
                            "retryable": True,
                        }
                    ]
                    assert ws.close_code == 1000
            finally:
                for ws in clients:
                    ws.transport.abort()
            await wait_no_connections(server)
            assert {r.close_reason for r in server.connection_log} == {"idle_timeout"}

    run(main())


def test_tts_connections_are_capped_and_a_freed_slot_is_reusable() -> None:
    async def main() -> None:
        async with gateway(max_tts_sessions=2) as server:
            first = await connect(server.tts_url, additional_headers=HEADERS, open_timeout=5)
            second = await connect(server.tts_url, additional_headers=HEADERS, open_timeout=5)
            try:
                with pytest.raises(InvalidStatus) as refused:
                    await connect(server.tts_url, additional_headers=HEADERS, open_timeout=5)
                assert refused.value.response.status_code == 503
                assert refused.value.response.headers["Retry-After"] == "1"
                # STT is not counted against the TTS cap.
                async with connect(server.stt_url, additional_headers=HEADERS, open_timeout=5):
                    pass
                await first.close()
                await asyncio.sleep(0.05)
                await served(server.tts_url)
            finally:
                for ws in (first, second):
                    ws.transport.abort()
            await wait_no_connections(server)

    run(main())


def test_tts_session_close_answers_session_closed_and_close_1000() -> None:
    async def main() -> None:
        async with (
            gateway() as server,
            connect(
                server.tts_url, additional_headers={"Authorization": f"Bearer {API_KEY}"}
            ) as ws,
        ):
            await ws.send(json.dumps({"type": "session.close"}))
            events, _ = await read_all(ws)
            assert events == [{"type": "session.closed"}]
            assert ws.close_code == 1000 and ws.close_reason == "session closed"

    run(main())


def test_espeak_text_that_looks_like_an_option_is_spoken_not_obeyed() -> None:
    from voxlane.gateway.tts_engines import EspeakEngine

    engine = EspeakEngine()
    engine.load()
    # Before the fix espeak-ng took this as "-f FILE" (read the text from a file): here a
    # missing one, so it failed; "-f/etc/hostname" spoke the machine's host name.
    audio = b"".join(engine.synthesize("-f/no/such/file"))
    assert len(audio) / 2 / engine.sample_rate > 0.5


@pytest.mark.parametrize(
    "rid",
    ["x\nconn 99: forged line", "x" * 10_000, "", "tab\tid", "del\x7f", "caf\u00e9", "\u202e"],
    ids=["newline", "10k", "empty", "tab", "del", "latin-1", "bidi"],
)
def test_a_request_id_must_be_short_printable_ascii(
    rid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The ``id`` is echoed in every event and logged: one with a newline could forge a
    log line, a 10k one fill it. Refused with 2003 (non-fatal, nothing echoed); the next
    request on the connection is served; no log line carries what the client sent."""
    caplog.set_level(logging.DEBUG, logger="voxlane")

    async def main() -> None:
        async with (
            gateway() as server,
            connect(server.tts_url, additional_headers=HEADERS, open_timeout=5) as ws,
        ):
            await ws.send(synthesize("Okay.", rid=rid, rate=16000))
            await ws.send(json.dumps({"type": "cancel"}))  # logs the current id at DEBUG
            error = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert error["type"] == "error" and error["code"] == 2003, error
            assert error["message"] == "'id' must be 1-64 printable ASCII characters"
            cancelled = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert cancelled == {"type": "synthesis.cancelled", "id": ""}
            longest = "~ !" + "i" * 61  # 64 characters: accepted, echoed as is
            await ws.send(synthesize("Okay.", rid=longest, rate=16000))
            kinds = await read_until(ws, "synthesis.done")
            assert kinds[0] == "synthesis.started" and "audio" in kinds, kinds
            assert server.connection_log[0].errors_sent == [2003]

    run(main())
    for record in caplog.records:
        message = record.getMessage()
        assert "\n" not in message and "forged" not in message and "x" * 100 not in message
    assert not logged_problems(caplog), logged_problems(caplog)
