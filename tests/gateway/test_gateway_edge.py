"""The gateway's HTTP edge against real clients: raw HTTP handshakes over loopback TCP
(header-level control) and the websockets client."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

import pytest
from gateway_helpers import API_KEY, HEADERS, create, gateway, logged_problems, run
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

WS_HEADERS = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
]
GOOD = ("Authorization", f"Bearer {API_KEY}")


async def handshake(
    port: int, path: str = "/v1/stt", headers: list[tuple[str, str]] | None = None
) -> tuple[int, dict[str, str]]:
    """One raw HTTP upgrade request; returns the status and the response headers. The
    socket is then dropped (a 101 connection ends as a vanished peer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{k}: {v}" for k, v in WS_HEADERS + (headers if headers is not None else [GOOD])]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        async with asyncio.timeout(5):
            status = int((await reader.readline()).split()[1])
            got: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode("latin-1").partition(":")
                got[key.strip()] = value.strip()
        return status, got
    finally:
        writer.transport.abort()


async def wait_open_connections(server: Any, n: int) -> None:
    async with asyncio.timeout(10):
        while server.statistics().open_connections != n:
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([GOOD, GOOD], 400),
        ([GOOD, ("Authorization", "Bearer wrong")], 400),
        ([("Authorization", "Basic dXNlcjpwYXNz")], 401),
        ([("Authorization", "Bearer")], 401),
        ([("Authorization", "Bearer \xff\xfe not ascii")], 401),
        ([], 401),
    ],
    ids=["two-good", "good-and-bad", "basic", "empty-bearer", "latin-1", "missing"],
)
def test_malformed_or_duplicate_authorization_is_refused_in_one_line(
    headers: list[tuple[str, str]], status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        async with gateway() as server:
            assert (await handshake(server.port, headers=headers))[0] == status
            assert (await handshake(server.port))[0] == 101  # still serving
            record = server.connection_log[0]
            assert (record.http_status, record.close_reason) == (status, f"http_{status}")

    run(main())
    assert not logged_problems(caplog), logged_problems(caplog)
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and "\n" not in refused[0], refused
    assert f"refused {status} /v1/stt from 127.0.0.1" in refused[0]


@pytest.mark.parametrize("path", ["//[x", "/v1/stt/../tts", "*", "/%ff%00", "/" + "a" * 4000])
def test_odd_paths_are_404_not_500(path: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with gateway() as server:
            assert (await handshake(server.port, path=path))[0] == 404
            assert server.connection_log[0].path == "<other path>"

    run(main())
    assert not logged_problems(caplog), logged_problems(caplog)


def test_keys_in_query_strings_or_paths_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="voxlane")
    secret = "sk-Secret-0123456789"

    async def main() -> list[str]:
        async with gateway() as server:
            async with connect(f"{server.stt_url}?api_key={secret}", additional_headers=HEADERS):
                pass
            with pytest.raises(InvalidStatus):
                async with connect(f"{server.tts_url}?token={secret}"):
                    pass
            assert (await handshake(server.port, path=f"/v1/{secret}"))[0] == 404
            assert (await handshake(server.port, path=f"/{secret}?k={secret}"))[0] == 404
            return [r.path for r in server.connection_log]

    paths = run(main())
    assert paths == [
        "/v1/stt?<redacted>",
        "/v1/tts?<redacted>",
        "<other path>",
        "<other path>?<redacted>",
    ]
    ours = [r for r in caplog.records if r.name.startswith("voxlane")]
    assert any("refused 404" in r.getMessage() for r in ours)
    for record in caplog.records:
        if record.name.startswith("voxlane") or record.levelno >= logging.INFO:
            assert secret not in record.getMessage(), record.getMessage()


def test_failed_handshakes_are_throttled_per_client(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="voxlane")

    async def main() -> None:
        async with gateway(failed_handshake_burst=3, failed_handshake_rate=2.0) as server:
            bad = [("Authorization", "Bearer guess")]
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            statuses = [(await handshake(server.port, headers=bad))[0] for _ in range(40)]
            elapsed = loop.time() - t0
            # The burst, plus what 2 tokens/s gave back meanwhile; the rest are 429.
            judged = statuses.count(401)
            assert statuses[:3] == [401, 401, 401], statuses
            assert judged <= 3 + 2 * elapsed + 1, (judged, elapsed)
            assert statuses.count(429) == 40 - judged
            # Throttled means throttled: even the right key waits for a token.
            status, headers = await handshake(server.port)
            assert status == 429 and headers["Retry-After"] == "1"
            await asyncio.sleep(1.0)  # 2 tokens back (only >= 0.5 s is needed)
            assert (await handshake(server.port))[0] == 101
            assert server.statistics().refused_by_limits >= 40 - judged

    run(main())
    throttled = [r for r in caplog.records if "too many failed handshakes" in r.getMessage()]
    warnings = [r for r in throttled if r.levelno == logging.WARNING]
    # One WARNING for the throttling episode, the repeats at DEBUG.
    assert len(warnings) == 1 and len(throttled) > len(warnings)
    assert not logged_problems(caplog), logged_problems(caplog)


class IdleSocket:
    """A TCP connection that sends nothing (or ``dribble``s bytes); ``closed`` is set when
    the server closes it (EOF or reset seen by a reader task)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(reader))

    @classmethod
    async def open(cls, port: int) -> IdleSocket:
        async with asyncio.timeout(5):
            return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while await reader.read(4096):
                pass
        except OSError:
            pass
        self.closed.set()

    async def dribble(self, data: bytes, every_s: float) -> None:
        """Send ``data`` one byte at a time (a slowloris request), until closed."""
        for byte in data:
            if self.closed.is_set():
                return
            try:
                self.writer.write(bytes([byte]))
                await self.writer.drain()
            except OSError:
                return
            await asyncio.sleep(every_s)

    async def aclose(self) -> None:
        self.writer.transport.abort()
        async with asyncio.timeout(5):
            await self.closed.wait()
        await self._reader


async def until(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("caps", "why"),
    [
        ({"max_connections_per_client": 3}, "too many connections from this client"),
        ({"max_connections": 3}, "too many connections"),
    ],
    ids=["per-client", "server-wide"],
)
def test_idle_tcp_connections_count_and_over_the_cap_are_closed_at_accept(
    caps: dict[str, int], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A slowloris client: 20 connections that never send a request. The first 3 hold
    the places (counted, open until the handshake timeout); the other 17 are closed by
    the server at once, without a byte read; a normal client gets a place as soon as one
    is given back."""
    caplog.set_level(logging.DEBUG, logger="voxlane")
    n, cap = 20, 3

    async def main() -> None:
        # A long handshake timeout: what closes the extra sockets here is the cap.
        async with gateway(handshake_timeout_s=60.0, **caps) as server:
            sockets = [await IdleSocket.open(server.port) for _ in range(n)]
            try:
                await until(lambda: sum(s.closed.is_set() for s in sockets) == n - cap)
                stats = server.statistics()
                assert (stats.open_connections, stats.refused_at_connect) == (cap, n - cap)
                assert stats.connections_seen == 0  # no HTTP request was ever read
                # Over the cap, a real client is turned away at accept too...
                with pytest.raises((InvalidHandshake, OSError)):
                    await connect(server.stt_url, additional_headers=HEADERS, open_timeout=5)
                await until(lambda: server.statistics().refused_at_connect == n - cap + 1)
                # ... and served once an idle socket goes away.
                survivors = [s for s in sockets if not s.closed.is_set()]
                assert len(survivors) == cap
                await survivors[0].aclose()
                await wait_open_connections(server, cap - 1)
                async with connect(server.stt_url, additional_headers=HEADERS) as ws:
                    assert (await create(ws))["type"] == "session.created"
                assert all(not s.closed.is_set() for s in survivors[1:])
            finally:
                for s in sockets:
                    await s.aclose()
            await wait_open_connections(server, 0)

    run(main())
    refused = [r for r in caplog.records if "refused a connection from 127.0.0.1" in r.getMessage()]
    assert len(refused) == n - cap + 1 and all(why in r.getMessage() for r in refused)
    # One WARNING for the episode, the repeats at DEBUG.
    assert [r.levelno for r in refused].count(logging.WARNING) == 1
    assert not logged_problems(caplog), logged_problems(caplog)


def test_a_handshake_not_finished_in_time_is_dropped_and_gives_its_place_back() -> None:
    """One socket sends nothing, one dribbles its request a byte every 0.1 s: both are
    closed at the handshake timeout (0.5 s here, 5 s by default) and uncounted."""

    async def main() -> None:
        async with gateway(handshake_timeout_s=0.5, max_connections_per_client=2) as server:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            idle, slow = await IdleSocket.open(server.port), await IdleSocket.open(server.port)
            request = f"GET /v1/stt HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
            dribbler = asyncio.create_task(slow.dribble(request * 10, 0.1))
            try:
                await until(lambda: server.statistics().open_connections == 2)
                await until(lambda: idle.closed.is_set() and slow.closed.is_set())
                assert loop.time() - t0 < 4.0  # the configured timeout, not the default
                await wait_open_connections(server, 0)
                async with connect(server.stt_url, additional_headers=HEADERS):
                    pass
            finally:
                await dribbler
                await idle.aclose()
                await slow.aclose()

    run(main())


def test_gateway_stt_retries_a_gateway_that_is_full_at_accept() -> None:
    """voxlane's own client takes "closed at accept" for what it is, a full server: it
    backs off and retries, and gets in once a place is free."""
    from voxlane.core.retry import Backoff
    from voxlane.media import AudioFrame
    from voxlane.providers.gateway_stt import GatewaySTT

    async def main() -> None:
        async with gateway(handshake_timeout_s=60.0, max_connections=1) as server:
            blocker = await IdleSocket.open(server.port)
            try:
                await wait_open_connections(server, 1)
                stt = GatewaySTT(
                    url=server.stt_url,
                    api_key=API_KEY,
                    max_retries=20,
                    backoff=Backoff(initial=0.05, multiplier=1.0, cap=0.05, jitter=0.0),
                )
                stream = stt.stream(sample_rate=16000)
                try:
                    stream.push_frame(AudioFrame(b"\x00\x00" * 320, 16000))
                    await until(lambda: server.statistics().refused_at_connect >= 2)
                    await blocker.aclose()
                    await until(lambda: server.statistics().live_sessions == 1)
                    stream.end_input()
                    async with asyncio.timeout(10):
                        async for _ in stream:
                            pass  # ends cleanly: no ProviderError
                finally:
                    await stream.aclose()
            finally:
                await blocker.aclose()

    run(main())


def test_a_client_that_resets_during_the_handshake_gives_its_place_back() -> None:
    async def main() -> None:
        async with gateway(max_connections_per_client=2) as server:
            for _ in range(20):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                loop = asyncio.get_running_loop()
                await loop.sock_connect(sock, ("127.0.0.1", server.port))
                request = ["GET /v1/stt HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
                request += [f"{k}: {v}" for k, v in [*WS_HEADERS, GOOD]]
                await loop.sock_sendall(sock, ("\r\n".join(request) + "\r\n\r\n").encode())
                # RST right away: the server may be anywhere in the handshake.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            await wait_open_connections(server, 0)
            async with connect(server.stt_url, additional_headers=HEADERS):
                pass

    run(main())


@pytest.mark.parametrize(
    "key", ["€€€€", "ключ", "é", "two words", "tab\there", "line\nbreak", "\x7f", ""]
)
def test_a_key_that_is_not_printable_ascii_is_refused_by_the_config(key: str) -> None:
    """``Bearer ????`` matched a key of four characters above U+00FF (each became "?");
    a Latin-1 key (``é``) matched only a raw byte no client library sends as such."""
    from voxlane.gateway import GatewayConfig
    from voxlane.gateway.admission import Admission, AdmissionLimits
    from voxlane.gateway.edge import HandshakeGate

    with pytest.raises(ValueError, match=r"^api_key must be") as refused:
        GatewayConfig(api_key=key)
    assert key not in str(refused.value) or not key  # the message never quotes the key
    if not key.isascii():  # the edge encodes strictly too: no "?" stands in for them
        with pytest.raises(UnicodeEncodeError):
            HandshakeGate(
                api_key=key,
                routes=frozenset({"/v1/stt"}),
                tts_route="/v1/tts",
                admission=Admission(AdmissionLimits()),
                now=lambda: 0.0,
                refusing=lambda: False,
                on_record=lambda record: None,
            )


def test_printable_ascii_keys_are_accepted_and_only_the_exact_header_gets_in() -> None:
    key = "K3y.with~all!sorts#of$punct%&'()*+,-/:;<=>?@[]^_`{|}"

    async def main() -> None:
        from voxlane.gateway import GatewayConfig, start_gateway

        server = await start_gateway(GatewayConfig(api_key=key, stt_engine="pocketsphinx"))
        try:
            good = [("Authorization", f"Bearer {key}")]
            assert (await handshake(server.port, headers=good))[0] == 101
            qmarks = [("Authorization", "Bearer " + "?" * len(key))]
            assert (await handshake(server.port, headers=qmarks))[0] == 401
        finally:
            await server.aclose()

    run(main())
