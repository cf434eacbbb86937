"""GatewaySTT reconnect backoff on virtual time, against a real websocket peer on 127.0.0.1.

The peer speaks the gateway protocol and follows a plan, one entry per connection attempt:
``("drop", n)`` accepts the session and aborts TCP after ``n`` audio frames (the gateway
vanished), ``("refuse", 0)`` answers the handshake HTTP 503 (it is not back yet),
``("shutdown", n)`` sends ``session.closed`` after ``n`` frames and closes (a gateway
shutting down), ``("serve", 0)`` serves normally. The caller pushes a numbered 20 ms frame
every 20 ms throughout, as a talking caller does: the backoff must keep its schedule anyway.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from voxlane.aio.ledger import LEDGER
from voxlane.core.retry import Backoff, FailureKind
from voxlane.errors import ProviderConnectionError
from voxlane.gateway import protocol as p
from voxlane.media import AudioFrame
from voxlane.providers.gateway_stt import GatewaySTT, GatewaySTTStream, StreamState

KEY = "backoff-test-key"
#: 1 s, 2 s, 4 s: with rand() = 0.5 the jitter is centred, so these are the exact delays.
BACKOFF = Backoff(initial=1.0, multiplier=2.0, cap=8.0, jitter=0.2)
DELAYS = (1.0, 2.0, 4.0)


class _Peer:
    def __init__(self, plan: list[tuple[str, int]]) -> None:
        self.plan = plan
        #: (loop time, kind) of every handshake, refused ones included.
        self.attempts: list[tuple[float, str]] = []
        #: Frame numbers received, one list per accepted connection.
        self.received: list[list[int]] = []
        self.dropped_at: float | None = None
        self._kinds: dict[ServerConnection, tuple[str, int]] = {}

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        kind, n = self.plan.pop(0) if len(self.plan) > 1 else self.plan[0]
        self.attempts.append((asyncio.get_running_loop().time(), kind))
        if kind == "refuse":
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "not back yet\n")
        self._kinds[conn] = (kind, n)
        return None

    async def handler(self, ws: ServerConnection) -> None:
        kind, n = self._kinds.pop(ws)
        frames: list[int] = []
        self.received.append(frames)
        async for message in ws:
            if isinstance(message, bytes):
                frames.append(int.from_bytes(message[:4], "little"))
                if kind == "drop" and len(frames) >= n:
                    self.dropped_at = asyncio.get_running_loop().time()
                    assert ws.transport is not None
                    ws.transport.abort()
                    return
                if kind == "shutdown" and len(frames) >= n:  # as GatewayServer.aclose()
                    await ws.send(p.encode_server_event(p.SessionClosed()))
                    await ws.close(1000)
                    return
                continue
            kind_of = json.loads(message)["type"]
            if kind_of == "session.create":
                await ws.send(p.encode_server_event(p.SessionCreated("stub")))
            elif kind_of == "session.finalize":
                await ws.send(p.encode_server_event(p.SessionFinalized()))
            elif kind_of == "session.close":
                await ws.send(p.encode_server_event(p.SessionClosed()))
                return


@asynccontextmanager
async def peer(plan: list[tuple[str, int]]) -> AsyncIterator[tuple[_Peer, str]]:
    state = _Peer(plan)
    server: Server = await serve(
        state.handler, "127.0.0.1", 0, process_request=state.process_request
    )
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield state, f"ws://127.0.0.1:{port}/v1/stt"
    finally:
        server.close()
        await server.wait_closed()


def open_stream(url: str, **kwargs: Any) -> GatewaySTTStream:
    kwargs.setdefault("max_retries", 3)
    return GatewaySTT(url=url, api_key=KEY, backoff=BACKOFF, rand=lambda: 0.5, **kwargs).stream()


class _Caller:
    """Pushes frame 0, 1, 2, ... every 20 ms until stopped; records when and in what state."""

    def __init__(self, stream: GatewaySTTStream) -> None:
        self.stream = stream
        self.pushed: list[tuple[int, float, StreamState]] = []
        self.pushing = True
        self.task = asyncio.ensure_future(self._talk())

    async def _talk(self) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        while self.pushing and self.stream.live:
            data = n.to_bytes(4, "little") + bytes(636)
            self.pushed.append((n, loop.time(), self.stream.state))
            self.stream.push_frame(AudioFrame(data, 16000))
            n += 1
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.pushing = False
        await asyncio.wait({self.task}, timeout=1.0)


async def until(condition: Any, timeout: float = 30.0) -> None:
    """Wait (virtual time) for ``condition``; fail the test past ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_talking_caller_does_not_cut_the_backoff_short() -> None:
    async with peer([("drop", 10), ("refuse", 0)]) as (gw, url):
        stream = open_stream(url)
        caller = _Caller(stream)
        with pytest.raises(ProviderConnectionError, match="gave up after 3 attempts"):
            async for _ in stream:
                pass
        gave_up_at = asyncio.get_running_loop().time()
        await caller.stop()
        await stream.aclose()
    assert gw.dropped_at is not None
    retries = [t for t, kind in gw.attempts if kind == "refuse"]
    assert len(retries) == 3
    gaps = [b - a for a, b in zip([gw.dropped_at, *retries], retries, strict=False)]
    # Each attempt waits its full backoff (a frame arrived every 20 ms meanwhile); the
    # slack above covers loopback I/O turns, not another schedule.
    for gap, delay in zip(gaps, DELAYS, strict=True):
        assert delay - 1e-6 <= gap < delay + 0.1, gaps
    assert gave_up_at - retries[-1] < 0.1
    assert len(caller.pushed) > sum(DELAYS) / 0.02 * 0.9  # the caller talked throughout
    assert LEDGER.count_open() == 0


@pytest.mark.parametrize("how", ["aclose", "end_input"])
async def test_close_or_end_of_input_during_a_backoff_returns_at_once(how: str) -> None:
    loop = asyncio.get_running_loop()
    async with peer([("drop", 10), ("refuse", 0)]) as (gw, url):
        stream = open_stream(url, max_retries=5)
        caller = _Caller(stream)
        # The first retry was refused: now in the 2 s backoff before the second.
        await until(lambda: sum(kind == "refuse" for _, kind in gw.attempts) == 1)
        await asyncio.sleep(0.5)
        assert stream.state is StreamState.BACKOFF
        t0 = loop.time()
        if how == "aclose":
            await stream.aclose()
        else:
            stream.end_input()
            assert [ev async for ev in stream] == []  # ends; no error: input ended
            await stream.aclose()
        assert loop.time() - t0 < 0.1
        await caller.stop()
        await asyncio.sleep(10.0)  # past every backoff: nothing reconnects (I5)
        assert [kind for _, kind in gw.attempts] == ["drop", "refuse"]
        assert stream.state is StreamState.CLOSED
    assert LEDGER.count_open() == 0


async def test_audio_pushed_during_the_backoff_is_sent_on_the_next_connection() -> None:
    async with peer([("drop", 10), ("refuse", 0), ("serve", 0)]) as (gw, url):
        stream = open_stream(url)
        caller = _Caller(stream)
        await until(lambda: len(gw.received) == 2 and len(gw.received[1]) > 20)
        await caller.stop()
        stream.end_input()
        assert [ev async for ev in stream] == []
        await stream.aclose()
    # Every frame pushed while there was no connection reached the next one, in order,
    # and so did the rest: nothing dropped (the buffer holds 5 s; the backoff was 3 s).
    offline = [n for n, _, state in caller.pushed if state is StreamState.BACKOFF]
    assert len(offline) > (DELAYS[0] + DELAYS[1]) / 0.02 * 0.9
    resumed = gw.received[1]
    assert resumed == list(range(resumed[0], len(caller.pushed)))
    assert resumed[0] <= offline[0]
    assert stream.stats.frames_dropped == 0


async def test_audio_beyond_the_buffer_during_a_long_backoff_drops_the_oldest() -> None:
    long_backoff = Backoff(initial=10.0, multiplier=1.0, cap=10.0, jitter=0.0)
    async with peer([("drop", 10), ("serve", 0)]) as (gw, url):
        stream = GatewaySTT(
            url=url, api_key=KEY, backoff=long_backoff, audio_buffer_s=1.0, max_retries=1
        ).stream()
        caller = _Caller(stream)
        await until(lambda: len(gw.received) == 2 and len(gw.received[1]) > 0)
        await caller.stop()
        stream.end_input()
        assert [ev async for ev in stream] == []
        await stream.aclose()
    # 10 s of backoff, 1 s of buffer (50 frames): the newest 50 frames pushed before the
    # reconnect came through, then everything after; the older ones were counted dropped.
    resumed = gw.received[1]
    assert resumed == list(range(resumed[0], len(caller.pushed)))
    offline = [n for n, _, state in caller.pushed if state is StreamState.BACKOFF]
    assert len(offline) > 9.0 / 0.02
    assert offline[0] < resumed[0] <= offline[-1] - 49
    assert stream.stats.frames_dropped == resumed[0] - gw.received[0][-1] - 1 > 0


async def test_a_gateway_shutting_down_mid_call_is_a_reconnect_not_the_end() -> None:
    async with peer([("shutdown", 10), ("serve", 0)]) as (gw, url):
        stream = open_stream(url)
        caller = _Caller(stream)
        await until(lambda: len(gw.received) == 2 and len(gw.received[1]) > 20)
        await caller.stop()
        stream.end_input()
        assert [ev async for ev in stream] == []
        await stream.aclose()
    assert stream.stats.reconnects == {"retry": 1, "idle": 0}
    assert gw.attempts[1][0] - gw.attempts[0][0] >= DELAYS[0]
    assert gw.received[1] == list(range(gw.received[1][0], len(caller.pushed)))


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (p.ErrorCode.SLOW_CONSUMER, FailureKind.RESET),
        (p.ErrorCode.ENGINE_ERROR, FailureKind.RESET),
        (p.ErrorCode.IDLE_TIMEOUT, FailureKind.IDLE_CLOSED),
        (p.ErrorCode.UNSUPPORTED_SETTINGS, FailureKind.BAD_SETTINGS),
    ],
)
async def test_server_errors_map_to_the_retry_decision(
    code: p.ErrorCode, kind: FailureKind
) -> None:
    stream = GatewaySTT(url="ws://127.0.0.1:9/v1/stt", api_key="k").stream()
    try:
        failure = stream._server_error(p.ErrorEvent(code.value, "x", True))
        assert failure is not None and failure.kind is kind
    finally:
        await stream.aclose()
