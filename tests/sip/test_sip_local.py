"""A real phone call on the real local pipeline: sipp speaks G.711 to ``voxlane sip
--providers local``'s stack (Silero VAD, whisper STT and piper TTS on the embedded gateway,
SmolLM2 on llama.cpp), the agent answers over RTP, the caller hangs up during the reply.

Skipped when sipp or the local engines are not installed (``make test`` installs both).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from voxlane import Agent
from voxlane.aio.ledger import LEDGER
from voxlane.cli.sip import open_providers
from voxlane.runners.sip_server import SipServerConfig, serve_sip
from voxlane.testing.speech import words

from .sipp import HAVE_SIPP, HOST, prepare_workdir, run_sipp

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_time,
    pytest.mark.skipif(not HAVE_SIPP, reason="sipp (sip-tester) not installed"),
]
SPOKEN = "Hello. I would like to book a table for two, tonight."  # prepare_workdir's pcap


class Host(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You take table reservations for a restaurant. "
                                      "Answer in two or three sentences.")


async def test_sip_call_on_the_real_local_pipeline(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("piper")
    pytest.importorskip("llama_cpp")
    workdir = prepare_workdir(tmp_path)
    args = argparse.Namespace(providers="local", gateway=None, api_key=None,
                              stt_engine="whisper")
    async with open_providers(args) as providers:
        server = await serve_sip(Host, providers, SipServerConfig(
            host=HOST, port=0, reports_dir=tmp_path / "reports", rtp_timeout_s=15.0))
        try:
            result = await run_sipp(workdir, "uac_bye_late.xml", server.port, timeout_s=40)
        finally:
            await server.aclose()
    assert result.returncode == 0, result.errors or result.stdout
    (report,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("*.json")]
    close = report["close"]
    assert close["reason"] == "participant_disconnected"
    assert close["open_connections_after"] == 0 and close["duration_ms"] <= 4000
    assert LEDGER.count_open() == 0
    users = [m["text"] for m in report["history"] if m["role"] == "user"]
    # 8 kHz G.711 through whisper tiny.en: most of the sentence comes through.
    assert users and len(set(words(" ".join(users))) & set(words(SPOKEN))) >= 4, users
    replies = [m["text"] for m in report["history"] if m["role"] == "assistant"]
    assert replies and replies[-1].strip(), report["history"]
    assert report["sip"]["rtp"]["loud_packets_out"] > 25  # piper's voice went out over RTP
