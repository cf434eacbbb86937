"""Bounded writes to one client, shared by the ``/v1/stt`` and ``/v1/tts`` connections.

A send that cannot finish by its deadline means the *client* is not reading (its receive
buffer and ours are full): a transport condition, never an engine failure. So neither
helper raises for it: :func:`send_bounded` reports what happened and the caller begins its
connection's one close with :data:`voxlane.gateway.stt_rules.SLOW_CONSUMER` (error 2014,
close 1008), and :func:`close_bounded` aborts the TCP connection when the closing
handshake does not finish in time.

Why ``asyncio.timeout_at`` is safe around these awaits (DESIGN §2 warns about it): a
websockets send only waits for the transport to drain and a close only for the peer's
close frame; both are plain futures that return at once when cancelled (nothing in them
swallows ``CancelledError``). A send cancelled while draining has already written its
whole frame to the transport buffer, so the stream of frames stays well formed.
"""

from __future__ import annotations

import asyncio
import enum

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["SendOutcome", "abort", "close_bounded", "send_bounded"]


class SendOutcome(enum.Enum):
    SENT = "sent"
    #: Not written in time: the client does not read (a slow consumer).
    TIMED_OUT = "timed_out"
    #: The connection is closed or closing (the peer left, or we are closing it).
    CLOSED = "closed"


async def send_bounded(ws: ServerConnection, data: str | bytes, deadline: float) -> SendOutcome:
    """Send one frame by ``deadline`` (the event loop's clock); never raises for the peer."""
    try:
        async with asyncio.timeout_at(deadline):
            await ws.send(data)
    except TimeoutError:
        return SendOutcome.TIMED_OUT
    except ConnectionClosed:
        return SendOutcome.CLOSED
    return SendOutcome.SENT


async def close_bounded(ws: ServerConnection, code: int, reason: str, deadline: float) -> bool:
    """Closing handshake with ``code`` and ``reason`` by ``deadline``; past it, abort TCP.

    Returns True if the handshake finished in time (False: the connection was aborted).
    """
    try:
        async with asyncio.timeout_at(deadline):
            await ws.close(code, reason)
    except TimeoutError:
        abort(ws)
        return False
    except ConnectionClosed:  # pragma: no cover - close() swallows it; kept for safety
        pass
    return True


def abort(ws: ServerConnection) -> None:
    """Drop the TCP connection now, without a closing handshake."""
    transport = ws.transport
    if transport is not None:
        transport.abort()
