"""A tiny fault-injecting OpenAI-compatible HTTP server for tests (asyncio streams on
127.0.0.1). Each connection is handed to a scenario coroutine with the parsed request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Peer:
    """The server side of one connection, as a scenario sees it."""

    request: Request
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    stop: asyncio.Event

    async def head(self, status: int = 200, content_type: str = "text/event-stream") -> None:
        reason = {200: "OK", 401: "Unauthorized", 429: "Too Many Requests"}.get(status, "X")
        self.writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        )
        await self.writer.drain()

    async def send(self, data: bytes | str) -> None:
        """One HTTP chunk (any bytes: may split an SSE line or event)."""
        raw = data.encode() if isinstance(data, str) else data
        self.writer.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        await self.writer.drain()

    async def event(self, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        await self.send(f"data: {text}\n\n")

    async def end(self) -> None:
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()

    async def error(self, status: int, message: str) -> None:
        body = json.dumps({"error": {"message": message, "type": "test"}})
        await self.head(status, "application/json")
        await self.send(body)
        await self.end()

    async def stall(self) -> None:
        """Hold the connection open, sending nothing, until the test ends."""
        await self.stop.wait()

    async def wait_disconnected(self, timeout: float) -> bool:
        """True if the client closed its side within ``timeout``."""
        try:
            done, _ = await asyncio.wait(
                {asyncio.ensure_future(self.reader.read(1))}, timeout=timeout
            )
        except asyncio.CancelledError:
            raise
        if not done:
            for task in _:
                task.cancel()
            return False
        return next(iter(done)).result() == b""


def text_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }


def tool_chunk(
    index: int,
    *,
    call_id: str | None = None,
    name: str | None = None,
    arguments: str | None = None,
) -> dict[str, Any]:
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    call: dict[str, Any] = {"index": index, "function": function}
    if call_id is not None:
        call["id"] = call_id
        call["type"] = "function"
    return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}


def finish_chunk(reason: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


Scenario = Callable[[Peer], Awaitable[None]]


@dataclass
class FakeServer:
    base_url: str
    requests: list[Request] = field(default_factory=list)
    peers: list[Peer] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)


async def _read_request(reader: asyncio.StreamReader) -> Request:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = json.loads(await reader.readexactly(length)) if length else {}
    return Request(method, path, headers, body)


@asynccontextmanager
async def fake_openai(scenario: Scenario) -> AsyncIterator[FakeServer]:
    """Serve ``scenario`` on 127.0.0.1; on exit, stop every connection (bounded)."""
    stop = asyncio.Event()
    handlers: set[asyncio.Task[Any]] = set()
    writers: list[asyncio.StreamWriter] = []
    state = FakeServer(base_url="")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        writers.append(writer)
        try:
            request = await _read_request(reader)
            state.requests.append(request)
            peer = Peer(request, reader, writer, stop)
            state.peers.append(peer)
            state.connected.set()
            await scenario(peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: that is what several tests do
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield state
    finally:
        stop.set()
        server.close()
        for writer in writers:
            writer.close()
        if handlers:
            await asyncio.wait(handlers, timeout=2.0)
        await asyncio.wait({asyncio.ensure_future(server.wait_closed())}, timeout=2.0)
