"""A tiny scripted UAC for the dialog and endpoint tests: builds the caller's requests
and parses what the endpoint sends back."""

from __future__ import annotations

import itertools

from voxlane.transports.sip import (
    DialogConfig,
    EndpointConfig,
    SipEndpointCore,
    SipRequest,
    SipResponse,
    parse_message,
)

from .messages import crlf, sipp_invite

CALLER = ("127.0.0.1", 5061)


def make_core(max_calls: int = 2, allowed: tuple[str, ...] | None = None) -> SipEndpointCore:
    counter = itertools.count(1)
    config = EndpointConfig(
        dialog=DialogConfig(local_host="127.0.0.1", local_port=5060),
        max_calls=max_calls,
        allowed_sources=allowed,
    )
    return SipEndpointCore(config, token_factory=lambda: f"tag{next(counter)}")


def sent(core: SipEndpointCore) -> list[SipRequest | SipResponse]:
    """Parse everything the core wants to send (and check it all goes to the caller)."""
    out = []
    for data, addr in core.datagrams_to_send():
        assert addr == CALLER, addr
        out.append(parse_message(data))
    return out


def statuses(messages: list[SipRequest | SipResponse]) -> list[object]:
    return [m.status if isinstance(m, SipResponse) else m.method for m in messages]


def in_dialog(
    method: str,
    call_id: str,
    cseq: int,
    to_tag: str | None,
    branch: str,
    from_tag: str = "4242SIPpTag001",
) -> bytes:
    to = "service <sip:service@127.0.0.1:5060>" + (f";tag={to_tag}" if to_tag else "")
    return crlf(
        f"{method} sip:service@127.0.0.1:5060 SIP/2.0\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\n"
        f"From: sipp <sip:sipp@127.0.0.1:5061>;tag={from_tag}\n"
        f"To: {to}\n"
        f"Call-ID: {call_id}\n"
        f"CSeq: {cseq} {method}\n"
        "Max-Forwards: 70\n"
        "Content-Length: 0\n\n"
    )


class Caller:
    """One scripted call against ``core``."""

    def __init__(
        self, core: SipEndpointCore, call_id: str = "call-1", from_tag: str = "4242SIPpTag001"
    ) -> None:
        self.core = core
        self.call_id = call_id
        self.from_tag = from_tag
        self.branch = f"z9hG4bK-{call_id}-inv"
        self.to_tag: str | None = None

    def invite(self, now: float = 0.0) -> list[SipRequest | SipResponse]:
        data = sipp_invite(call_id=self.call_id, branch=self.branch, from_tag=self.from_tag)
        self.core.receive_datagram(data, CALLER, now)
        return sent(self.core)

    def send(
        self,
        method: str,
        cseq: int,
        now: float,
        *,
        to_tag: str | None = None,
        branch: str | None = None,
    ) -> list[SipRequest | SipResponse]:
        data = in_dialog(
            method, self.call_id, cseq, to_tag, branch or f"z9hG4bK-{method}{cseq}", self.from_tag
        )
        self.core.receive_datagram(data, CALLER, now)
        return sent(self.core)

    def ack(self, now: float) -> list[SipRequest | SipResponse]:
        return self.send("ACK", 1, now, to_tag=self.to_tag)

    def bye(self, now: float, cseq: int = 2) -> list[SipRequest | SipResponse]:
        return self.send("BYE", cseq, now, to_tag=self.to_tag)

    def cancel(self, now: float) -> list[SipRequest | SipResponse]:
        return self.send("CANCEL", 1, now, branch=self.branch)

    def answered(self, now: float, sdp: bytes = b"v=0\r\n") -> list[SipRequest | SipResponse]:
        self.core.answer(self.call_id, sdp, now)
        out = sent(self.core)
        for m in out:
            if isinstance(m, SipResponse) and m.status == 200:
                self.to_tag = m.to_addr.tag
        return out

    def reply_to(self, request: SipRequest, status: int, now: float) -> None:
        from voxlane.transports.sip import build_response

        self.core.receive_datagram(build_response(request, status).to_bytes(), CALLER, now)
