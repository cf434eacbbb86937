"""The gateway over real loopback websockets, with the real pocketsphinx engine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    HEADERS,
    SENTENCES,
    client,
    create,
    drain_until_closed,
    events_until,
    gateway,
    next_event,
    run,
    silence,
    stream,
    synthesize,
    word_errors,
    words,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from voxlane.gateway import protocol as p


def speech(tts_dir: Path, sentences: tuple[str, ...], rate: int = 16000) -> bytes:
    return b"".join(
        silence(0.3, rate) + synthesize(s, tts_dir, rate) + silence(0.8, rate) for s in sentences
    )


def finals(events: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in events if e["type"] == "final_transcript"]


def test_grammar_session_recognizes_every_phrase_exactly_with_interims(tts_dir: Path) -> None:
    async def main() -> None:
        async with gateway() as server, client(server.stt_url) as ws:
            created = await create(ws, phrases=SENTENCES)
            assert created["type"] == "session.created" and created["session_id"]
            await stream(ws, speech(tts_dir, SENTENCES))
            await ws.send(p.encode_client_message(p.SessionFinalize()))
            events = await events_until(ws, "session.finalized")
        assert finals(events) == list(SENTENCES)
        assert sum(e["type"] == "interim_transcript" for e in events) >= len(SENTENCES)
        kinds = [e["type"] for e in events if e["type"] != "interim_transcript"]
        assert kinds == ["start_of_speech", "final_transcript", "end_of_speech"] * 5 + [
            "session.finalized"
        ]
        spans = [(e["start_s"], e["end_s"]) for e in events if e["type"] == "final_transcript"]
        assert all(a < b for a, b in spans)
        assert all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))

    run(main())


def test_language_model_without_grammar_stays_within_measured_wer(tts_dir: Path) -> None:
    # Open-vocabulary pocketsphinx (en-us LM, fwdflat off) on flite's synthetic voice is
    # weak: measured here 14 word errors over the 37 reference words (WER 0.38), mostly in
    # "open the front door and turn on the lights" ("open up on oregon on blood"). The
    # bound (0.45) leaves room for ~2 words of decoder-version noise; exact recognition is
    # what the grammar test above checks.
    async def main() -> list[str]:
        async with gateway() as server, client(server.stt_url) as ws:
            await create(ws)
            await stream(ws, speech(tts_dir, SENTENCES))
            await ws.send(p.encode_client_message(p.SessionFinalize()))
            return finals(await events_until(ws, "session.finalized"))

    hyp = words(" ".join(run(main())))
    ref = words(" ".join(SENTENCES))
    assert word_errors(ref, hyp) / len(ref) <= 0.45, hyp


@pytest.mark.parametrize("rate", [8000, 24000, 48000])
def test_other_sample_rates_are_resampled(tts_dir: Path, rate: int) -> None:
    async def main() -> list[str]:
        async with gateway() as server, client(server.stt_url) as ws:
            await create(ws, sample_rate=rate, phrases=SENTENCES)
            await stream(ws, speech(tts_dir, SENTENCES[:2], rate), frame_bytes=rate // 25)
            await ws.send(p.encode_client_message(p.SessionFinalize()))
            return finals(await events_until(ws, "session.finalized"))

    assert run(main()) == list(SENTENCES[:2])


def test_finalize_flushes_pending_speech_then_acknowledges(tts_dir: Path) -> None:
    async def main() -> None:
        async with gateway() as server, client(server.stt_url) as ws:
            await create(ws, phrases=SENTENCES)
            await ws.send(p.encode_client_message(p.SessionFinalize()))
            assert (await next_event(ws))["type"] == "session.finalized"  # nothing pending
            # Speech with no trailing silence: only finalize can end the utterance.
            await stream(ws, silence(0.3) + synthesize(SENTENCES[4], tts_dir))
            await ws.send(p.encode_client_message(p.SessionFinalize()))
            events = await events_until(ws, "session.finalized")
        assert finals(events) == [SENTENCES[4]]
        assert [e["type"] for e in events][-3:] == [
            "final_transcript",
            "end_of_speech",
            "session.finalized",
        ]

    run(main())


def test_session_close_gets_session_closed_and_close_1000() -> None:
    async def main() -> None:
        async with gateway() as server:
            async with client(server.stt_url) as ws:
                await create(ws)
                await stream(ws, silence(0.2))
                await ws.send(p.encode_client_message(p.SessionClose()))
                events = await drain_until_closed(ws)
                assert events == [{"type": "session.closed"}]
                assert ws.close_code == 1000
            record = server.connection_log[-1]
            assert record.messages == ["session.create", "session.close"]
            assert record.close_reason == "client_close" and record.close_code == 1000
            assert server.live_sessions == 0

    run(main())


def test_idle_timeout_sends_2007_then_closes_1000() -> None:
    async def main() -> None:
        async with gateway(idle_timeout_s=0.3) as server, client(server.stt_url) as ws:
            await create(ws)
            loop = asyncio.get_running_loop()
            # Audio restarts the idle timer: 0.8 s of frames every 0.1 s keeps it alive.
            t_end = loop.time() + 0.8
            while loop.time() < t_end:
                await ws.send(silence(0.02))
                await asyncio.sleep(0.1)
            t0 = loop.time()
            events = await drain_until_closed(ws)
            elapsed = loop.time() - t0
            assert events == [
                {
                    "type": "error",
                    "code": 2007,
                    "message": "session closed due to inactivity",
                    "retryable": True,
                }
            ]
            assert ws.close_code == 1000
            assert 0.2 <= elapsed <= 1.5, elapsed
            assert server.connection_log[-1].close_reason == "idle_timeout"

    run(main())


def test_wrong_or_missing_key_is_refused_at_handshake_and_unknown_path_is_404() -> None:
    async def main() -> None:
        async with gateway() as server:
            cases = [
                (server.stt_url, {}, 401),
                (server.stt_url, {"Authorization": "Bearer nope"}, 401),
                (server.stt_url, {"Authorization": HEADERS["Authorization"].lower()}, 401),
                (server.url + "/v1/nothing", HEADERS, 404),
                (server.url + "/v1/stt/extra", HEADERS, 404),
            ]
            for url, headers, status in cases:
                with pytest.raises(InvalidStatus) as info:
                    async with connect(url, additional_headers=headers, open_timeout=5):
                        pass
                assert info.value.response.status_code == status
            log = server.connection_log
            assert [r.http_status for r in log] == [401, 401, 401, 404, 404]
            assert all(r.session_ids == [] and r.messages == [] for r in log)
            assert server.live_sessions == 0

    run(main())


def test_every_bad_input_gets_its_code_and_a_concurrent_session_is_unaffected(
    tts_dir: Path,
) -> None:
    async def good_session(url: str) -> list[str]:
        async with client(url) as ws:
            await create(ws, phrases=SENTENCES)
            await stream(ws, speech(tts_dir, SENTENCES[:2]), pace_s=0.002)
            await ws.send(p.encode_client_message(p.SessionFinalize()))
            return finals(await events_until(ws, "session.finalized"))

    async def expect_error(ws: Any, code: int) -> None:
        evt = await next_event(ws)
        assert evt["type"] == "error" and evt["code"] == code, evt
        assert evt["retryable"] is p.error_info(p.ErrorCode(code)).retryable

    async def abuse(url: str) -> None:
        async with client(url) as ws:
            await ws.send(b"\x00\x00" * 160)
            await expect_error(ws, 2004)
            await ws.send(json.dumps({"type": "session.finalize"}))
            await expect_error(ws, 2004)
            await ws.send("{not json")
            await expect_error(ws, 2001)
            await ws.send(json.dumps({"type": "session.bogus"}))
            await expect_error(ws, 2002)
            await ws.send(json.dumps({"type": "session.create", "settings": 3}))
            await expect_error(ws, 2003)
            await ws.send(
                json.dumps({"type": "session.create", "settings": {"sample_rate": 44100}})
            )
            await expect_error(ws, 2005)
            await ws.send(
                json.dumps({"type": "session.create", "settings": {"phrases": ["zzqx blorfle"]}})
            )
            await expect_error(ws, 2005)
            assert (await create(ws))["type"] == "session.created"
            assert (await create(ws))["code"] == 2006
            await ws.send(b"\x00" * 641)
            await expect_error(ws, 2009)
            await ws.send(json.dumps({"type": "session.finalize"}))
            assert (await next_event(ws))["type"] == "session.finalized"  # still alive
            await ws.send(b"\x00" * 8192)  # > max_frame_bytes: fatal
            events = await drain_until_closed(ws)
            assert [e.get("code") for e in events] == [2010]
            assert ws.close_code == 1009
        async with client(url) as ws:  # oversized text frame: same fatal code
            await ws.send(" " * 5000)
            assert [e.get("code") for e in await drain_until_closed(ws)] == [2010]

    async def main() -> None:
        async with gateway(max_frame_bytes=4096) as server:
            good, _ = await asyncio.gather(good_session(server.stt_url), abuse(server.stt_url))
            assert good == list(SENTENCES[:2])
            async with client(server.stt_url) as ws:  # the server still serves
                assert (await create(ws))["type"] == "session.created"
            errors = [c for r in server.connection_log for c in r.errors_sent]
            assert errors == [2004, 2004, 2001, 2002, 2003, 2005, 2005, 2006, 2009, 2010, 2010]

    run(main())


def test_max_sessions_full_gets_2008_and_close_and_the_slot_comes_back() -> None:
    async def main() -> None:
        async with gateway(max_sessions=1) as server:
            async with client(server.stt_url) as first:
                assert (await create(first))["type"] == "session.created"
                async with client(server.stt_url) as second:
                    await second.send(p.encode_client_message(p.SessionCreate()))
                    events = await drain_until_closed(second)
                    assert [(e["code"], e["retryable"]) for e in events] == [(2008, True)]
                    assert second.close_code == 1000
                await first.send(p.encode_client_message(p.SessionClose()))
                await drain_until_closed(first)
            async with client(server.stt_url) as third:
                assert (await create(third))["type"] == "session.created"

    run(main())


def test_aclose_sends_session_closed_to_every_session_and_stops_accepting() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with gateway(shutdown_timeout_s=2.0) as server:
            a = await connect(server.stt_url, additional_headers=HEADERS)
            b = await connect(server.stt_url, additional_headers=HEADERS)
            await create(a)
            await create(b)
            await stream(a, silence(0.5))
            t_close = loop.time()
            await server.aclose()
            took = loop.time() - t_close
            for ws in (a, b):
                assert await drain_until_closed(ws) == [{"type": "session.closed"}]
                assert ws.close_code == 1000
            assert took < 2.0
            with pytest.raises(OSError):
                await connect(server.stt_url, additional_headers=HEADERS, open_timeout=2)
            assert all(r.opened_at < t_close for r in server.connection_log)
            assert all(r.closed_at is not None for r in server.connection_log)
            assert server.live_sessions == 0
            await server.aclose()  # idempotent

    run(main())


def test_resampled_session_goes_on_after_a_finalize(tts_dir: Path) -> None:
    async def main() -> list[str]:
        texts: list[str] = []
        async with gateway() as server, client(server.stt_url) as ws:
            await create(ws, sample_rate=8000, phrases=SENTENCES)
            for sentence in SENTENCES[3:5]:
                await stream(
                    ws, silence(0.2, 8000) + synthesize(sentence, tts_dir, 8000), frame_bytes=320
                )
                await ws.send(p.encode_client_message(p.SessionFinalize()))
                texts += finals(await events_until(ws, "session.finalized"))
        return texts

    assert run(main()) == list(SENTENCES[3:5])


def test_plain_http_request_is_logged_with_its_status_and_no_session() -> None:
    async def main() -> None:
        async with gateway() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"GET /v1/stt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\n\r\n"
            )
            await writer.drain()
            async with asyncio.timeout(5):
                status_line = await reader.readline()
            writer.close()
            assert b" 426 " in status_line or b" 400 " in status_line, status_line
            (record,) = server.connection_log
            assert record.http_status in (400, 426) and record.session_ids == []
            assert record.closed_at is not None

    run(main())


def test_aclose_is_bounded_when_a_client_ignores_the_closing_handshake() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with gateway(close_timeout_s=0.5, shutdown_timeout_s=1.0) as server:
            # A raw TCP peer: completes the websocket handshake, then never reads or answers.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"GET /v1/stt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer test-key\r\n\r\n"
            )
            await writer.drain()
            async with asyncio.timeout(5):
                assert b" 101 " in await reader.readline()
            t0 = loop.time()
            await server.aclose()
            assert loop.time() - t0 < 1.5
            (record,) = server.connection_log
            assert record.close_reason == "server_shutdown" and record.closed_at is not None
            async with asyncio.timeout(5):
                rest = await reader.read()  # the server dropped TCP: EOF, not a hang
            assert b"session.closed" in rest
            writer.close()

    run(main())
