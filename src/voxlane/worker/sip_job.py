"""The job side of a SIP call (spec ``"kind": "sip"`` from :class:`.sip_source.SipCall`).

The job process opens the call's RTP socket itself (it owns the call's media: when the job
is killed, the OS closes the socket), reports the port to the worker (``media_ready``) so
that the worker answers 200 OK, and runs the session on a :class:`SipRoom`. The call ends
when the worker says the caller left (BYE/CANCEL), when RTP stops for ``rtp_timeout_s``, when
the agent closes the session (the worker then sends BYE), or after ``max_call_s``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from voxlane.aio.clock import Clock
from voxlane.room import DisconnectReason
from voxlane.testing.fakes import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from voxlane.transports.sip.addresses import ALLOW_ALL, Allowlist
from voxlane.transports.sip.room import SipRoom
from voxlane.transports.sip.rtp_io import RtpStream, open_rtp_stream
from voxlane.transports.sip.sdp import negotiate, parse_sdp
from voxlane.voice.session import AgentSession
from voxlane.worker.synthetic import fake_replies

__all__ = ["SipJob", "open_sip_job"]

PROVIDERS = ("fake", "local")


@dataclass
class SipJob:
    """One SIP call inside its job process (a ``JobCall`` for :mod:`.job`)."""

    room: SipRoom
    session: AgentSession
    media: RtpStream
    max_call_s: float

    def ready_event(self) -> tuple[str, dict[str, Any]] | None:
        """What the worker needs before it answers: our RTP port."""
        return "media_ready", {"port": self.media.local_port}

    def hang_up(self, reason: str) -> None:
        """The caller left (the worker received BYE or CANCEL)."""
        self.room.disconnect(DisconnectReason.parse(reason))

    async def run(self) -> None:
        """Bound the conversation itself: after ``max_call_s`` we hang up."""
        await asyncio.sleep(self.max_call_s)
        self.room.disconnect(DisconnectReason.ROOM_CLOSED)

    async def aclose(self, deadline: float) -> None:
        await self.media.aclose(deadline)

    def report_extra(self) -> dict[str, Any]:
        s = self.media.statistics()
        reason = self.room.disconnect_reason
        return {
            "sip": {
                "call_id": self.room.name,
                "caller": self.room.participant.identity,
                "rtp_port": self.media.local_port,
                "disconnect_reason": reason.value if reason is not None else None,
                "rtp": {
                    "packets_in": s.packets_in,
                    "packets_out": s.packets_out,
                    "loud_packets_out": s.loud_packets_out,
                    "lost": s.lost,
                    "late": s.late,
                    "garbage": s.garbage,
                    "frames_unsent": s.frames_unsent,
                },
            }
        }


def session_providers(spec: dict[str, Any]) -> dict[str, Any]:
    """``stt``, ``vad``, ``llm``, ``tts`` for the call's session. ``"fake"``: the testing
    kit's energy-based fakes, the LLM scripted by ``spec["llm"]``. ``"local"``: the worker's
    local stack — ``spec["stack"]`` has its gateway URL and key and its LLM server's URL
    (a ``spec["llm"]`` script replaces that LLM)."""
    kind = spec.get("providers", "fake")
    script = FakeLLM(fake_replies(spec["llm"])) if "llm" in spec else None
    if kind == "fake":
        return {"stt": FakeSTT(), "vad": FakeVAD(), "llm": script or FakeLLM(), "tts": FakeTTS()}
    if kind == "local":
        from voxlane.runners.stack import connect_stack

        where = spec.get("stack") or {}
        stack = connect_stack(
            str(where["gateway_url"]),
            str(where["api_key"]),
            llm=script,
            llm_base_url=where.get("llm_base_url"),
        )
        return {"stt": stack.stt, "vad": stack.vad, "llm": stack.llm, "tts": stack.tts}
    raise ValueError(f"unknown providers {kind!r} (choose from {', '.join(PROVIDERS)})")


async def open_sip_job(spec: dict[str, Any], clock: Clock, session_id: str) -> SipJob:
    """Open the RTP socket and build the session. Raises ``OSError`` when no RTP port is
    free and ``ValueError`` for a spec it cannot run (the job then reports the error and
    the worker rejects the call)."""
    providers = session_providers(spec)  # first: a spec it cannot run opens no socket
    negotiation = negotiate(parse_sdp(str(spec["sdp_offer"]).encode()))
    ports = spec.get("rtp_port_range")
    call_id = str(spec["call_id"])
    media = await open_rtp_stream(
        str(spec["host"]),
        port_range=(int(ports[0]), int(ports[1])) if ports else None,
        rtp_timeout_s=float(spec.get("rtp_timeout_s", 10.0)),
        clock=clock,
        name=call_id,
    )
    room = SipRoom(call_id, media, caller=str(spec.get("caller", "sip-caller")))

    def caller_gone() -> None:  # no RTP for rtp_timeout_s: the far end vanished
        room.disconnect(DisconnectReason.TIMEOUT)

    media.on_timeout = caller_gone
    session = AgentSession(
        **providers,
        close_timeout=float(spec.get("close_timeout", 4.0)),
        session_id=session_id,
        clock=clock,
    )
    allowed = spec.get("allowed_sources")
    media.start(
        negotiation,
        signaling_host=spec.get("signaling_host"),
        allowlist=Allowlist(allowed) if allowed else ALLOW_ALL,
    )
    return SipJob(room, session, media, float(spec.get("max_call_s", 4 * 3600.0)))
