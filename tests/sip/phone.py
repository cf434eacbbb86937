"""A raw UDP SIP caller on 127.0.0.1 for the server tests: it sends bytes it built itself
(so it can send what sipp cannot: forged Vias, hostnames in SDP, RTP from a "NAT" port)
and reads responses with a deadline."""

from __future__ import annotations

import asyncio
import socket

from voxlane.transports.sip import SipRequest, SipResponse, parse_message

from .messages import crlf, sipp_invite
from .uac import in_dialog

HOST = "127.0.0.1"


class Phone:
    """SIP from one UDP socket. ``server_port`` is where it calls."""

    def __init__(self, server_port: int = 0) -> None:
        self.server_port = server_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.requests: list[SipRequest] = []  # requests from the server (BYE), in order

    def _ours(self, data: bytes) -> bytes:
        return data.replace(b"127.0.0.1:5061", f"{HOST}:{self.port}".encode())

    def invite(self, call_id: str, server_port: int = 0, *, sdp: bytes | None = None) -> bytes:
        """sipp's INVITE from this phone (``sdp``: another body, Content-Length fixed)."""
        data = self._ours(sipp_invite(call_id=call_id, branch=f"z9hG4bK-{call_id}"))
        if sdp is None:
            return data
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        head = [ln for ln in head if not ln.startswith(b"Content-Length")]
        return b"\r\n".join([*head, b"Content-Length: %d" % len(sdp)]) + b"\r\n\r\n" + sdp

    def in_dialog(self, method: str, call_id: str, cseq: int, to_tag: str | None) -> bytes:
        branch = f"z9hG4bK-{call_id}" if method == "ACK" else f"z9hG4bK-{call_id}-{cseq}"
        return self._ours(in_dialog(method, call_id, cseq, to_tag, branch))

    def options(self, call_id: str, via_params: str = "") -> bytes:
        return crlf(
            "OPTIONS sip:service@127.0.0.1 SIP/2.0\n"
            f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK-{call_id}{via_params}\n"
            f"From: <sip:probe@127.0.0.1>;tag=p\nTo: <sip:service@127.0.0.1>\n"
            f"Call-ID: {call_id}\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
        )

    def send(self, data: bytes, server_port: int = 0) -> None:
        self.sock.sendto(data, (HOST, server_port or self.server_port))

    async def responses(self, call_id: str, want: int, timeout_s: float = 3.0) -> list[SipResponse]:
        """Responses for ``call_id`` until one with status ``want`` or the deadline;
        requests from the server are kept in :attr:`requests`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        seen: list[SipResponse] = []
        while loop.time() < deadline and all(r.status != want for r in seen):
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            msg = parse_message(data)
            if isinstance(msg, SipRequest):
                self.requests.append(msg)
            elif msg.call_id == call_id:
                seen.append(msg)
        return seen

    async def statuses(self, call_id: str, want: int, timeout_s: float = 3.0) -> list[int]:
        """Statuses received for ``call_id`` until ``want`` arrives or the deadline."""
        return [r.status for r in await self.responses(call_id, want, timeout_s)]

    def close(self) -> None:
        self.sock.close()
