"""Server policy over real UDP on 127.0.0.1, with a raw socket as the caller: the call
limit (503), the source allowlist (403), OPTIONS probes, and shutdown while ringing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from voxlane.aio.ledger import LEDGER
from voxlane.runners.sip_server import SipServerConfig, serve_sip

from .messages import crlf
from .phone import Phone
from .test_sip_server import Greeter, providers

pytestmark = pytest.mark.real_time

HOST = "127.0.0.1"


def read_reports(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


async def test_call_limit_answers_503_and_shutdown_ends_ringing_call(tmp_path: Path) -> None:
    server = await serve_sip(Greeter, providers, SipServerConfig(
        host=HOST, port=0, max_calls=1, answer_delay_s=30.0, retry_after_s=7,
        reports_dir=tmp_path))
    phone = Phone()
    try:
        phone.send(phone.invite("first", server.port), server.port)
        assert 100 in await phone.statuses("first", 100)
        phone.send(phone.invite("second", server.port), server.port)
        (busy,) = [r for r in await phone.responses("second", 503) if r.status == 503]
        assert busy.headers.get("retry-after") == "7"
        options = crlf(
            "OPTIONS sip:service@127.0.0.1 SIP/2.0\n"
            f"Via: SIP/2.0/UDP {HOST}:{phone.port};branch=z9hG4bK-opt\n"
            "From: <sip:probe@127.0.0.1>;tag=p\nTo: <sip:service@127.0.0.1>\n"
            "Call-ID: probe\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
        phone.send(options, server.port)
        assert 200 in await phone.statuses("probe", 200)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await server.aclose()
        assert loop.time() - t0 < 1.0  # a ringing call has no session to wait for
        assert 603 in await phone.statuses("first", 603)  # we declined it on shutdown
    finally:
        phone.close()
        await server.aclose()
    assert server.active_calls == 0 and server.statistics().sessions_started == 0
    (report,) = read_reports(tmp_path)
    assert report["session_id"] is None and report["sip"]["ended_by"] == "server_shutdown"
    assert LEDGER.count_open() == 0


async def test_source_outside_allowlist_gets_403(tmp_path: Path) -> None:
    server = await serve_sip(Greeter, providers, SipServerConfig(
        host=HOST, port=0, allowed_sources=("10.0.0.0/8",), reports_dir=tmp_path))
    phone = Phone()
    try:
        phone.send(phone.invite("blocked", server.port), server.port)
        assert 403 in await phone.statuses("blocked", 403)
    finally:
        phone.close()
        await server.aclose()
    assert server.statistics().calls_offered == 0
    assert read_reports(tmp_path) == []


async def test_a_call_id_cannot_put_its_report_outside_the_reports_dir(tmp_path: Path) -> None:
    """A Call-ID comes from the network and may hold ``/`` and ``..``: ``voxlane sip``
    names its reports with the worker's rule (:func:`voxlane.voice.report.report_file_name`)."""
    reports = tmp_path / "reports"
    server = await serve_sip(Greeter, providers, SipServerConfig(
        host=HOST, port=0, answer_delay_s=30.0, reports_dir=reports))
    phone = Phone(server.port)
    evil = f"../../{tmp_path.name}-escaped/x"
    try:
        phone.send(phone.invite("evil").replace(b"Call-ID: evil", f"Call-ID: {evil}".encode()))
        assert 100 in await phone.statuses(evil, 100)
        cancel = phone.in_dialog("CANCEL", "evil", 1, None).replace(
            b"branch=z9hG4bK-evil-1", b"branch=z9hG4bK-evil")
        phone.send(cancel.replace(b"Call-ID: evil", f"Call-ID: {evil}".encode()))
        assert 487 in await phone.statuses(evil, 487)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while server.active_calls and loop.time() < deadline:
            await asyncio.sleep(0.02)
    finally:
        phone.close()
        await server.aclose()
    assert not (tmp_path.parent / f"{tmp_path.name}-escaped").exists()
    (path,) = reports.iterdir()
    assert path.name == f".._.._{tmp_path.name}-escaped_x.json"
    assert json.loads(path.read_text())["sip"]["ended_by"] == "cancel"
