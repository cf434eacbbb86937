"""No secret in any log, at DEBUG: a real gateway and voxlane's own clients (GatewaySTT,
GatewayTTS) in one process, logging configured the way each voxlane command does it.

What would leak: websockets at DEBUG logs every request header (``Authorization: Bearer
KEY``) and every text frame (``session.create`` phrases, transcripts, the text to speak);
engine exceptions quote the request (espeak-ng's ``TimeoutExpired`` carries its command
line, so the text).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_helpers import run, silence, synthesize

from voxlane.gateway import GatewayConfig, start_gateway
from voxlane.gateway import protocol as p
from voxlane.gateway.tts_engines import EspeakEngine
from voxlane.media import AudioFrame
from voxlane.providers.gateway_stt import GatewaySTT
from voxlane.providers.gateway_tts import GatewayTTS

PHRASES = ("open the front door", "turn on the lights")
SPOKEN = "Purple elephants dance quietly at midnight."
FAILING = "Seventeen orange giraffes whisper secrets."


def _worker(level: str) -> None:
    from voxlane.worker.logs import setup_logging

    setup_logging(level, "text")


def _voxlane(level: str) -> None:
    from voxlane.cli.main import configure_logging

    configure_logging(level)


def _gateway_cli(level: str) -> None:
    from voxlane.gateway.cli import configure_logging

    configure_logging(level)


CONFIGURATORS: dict[str, Callable[[str], None]] = {
    # voxlane start and its job processes (worker/job.py)
    "worker": _worker,
    # voxlane sip, demo, console (the embedded gateway and the clients in one process)
    "voxlane": _voxlane,
    "gateway": _gateway_cli,
}
NAMES = ("websockets", "websockets.client", "websockets.server")


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[str], None]]:
    """Apply a configurator at DEBUG with caplog's handler on the root logger; restore the
    root logger and the websockets loggers afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in NAMES})

    def configure(name: str) -> None:
        CONFIGURATORS[name]("DEBUG")
        # In a fresh process basicConfig sets the level; under pytest root has handlers.
        root.setLevel(logging.DEBUG)
        if caplog.handler not in root.handlers:
            root.addHandler(caplog.handler)  # setup_logging replaced the handlers
        caplog.handler.setLevel(logging.NOTSET)

    try:
        yield configure
    finally:
        root.handlers[:], level, levels = saved
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)


def _leaks(caplog: pytest.LogCaptureFixture, secrets_: list[str]) -> list[str]:
    text = caplog.text  # formatted records, tracebacks included
    found = [s for s in secrets_ if s in text]
    for record in caplog.records:
        message = record.getMessage()
        found += [f"{record.name}: {message}" for s in secrets_ if s in message]
    return found


async def _speak(url: str, key: str, text: str) -> int:
    tts = GatewayTTS(url=url, api_key=key, voice="espeak")
    stream = tts.stream()
    try:
        stream.push_text(text)
        stream.end_input()
        audio = 0
        async with asyncio.timeout(20):
            async for frame in stream:
                audio += len(frame.data)
        return audio
    finally:
        await stream.aclose()


async def _transcribe(url: str, key: str, pcm: bytes) -> list[str]:
    stt = GatewaySTT(url=url, api_key=key, phrases=PHRASES)
    stream = stt.stream(sample_rate=16000)
    finals: list[str] = []
    try:
        for i in range(0, len(pcm), 640):
            stream.push_frame(AudioFrame(pcm[i : i + 640], 16000))
        stream.end_input()
        async with asyncio.timeout(20):
            async for event in stream:
                if event.type.value == "final_transcript":
                    finals.append(event.text)
        return finals
    finally:
        await stream.aclose()


@pytest.mark.parametrize("configurator", list(CONFIGURATORS))
def test_debug_logs_carry_no_key_phrases_transcripts_or_text(
    configurator: str,
    debug_logging: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
    tts_dir: Path,
) -> None:
    key = "k-" + secrets.token_hex(12)
    pcm = silence(0.3) + synthesize(PHRASES[0], tts_dir) + silence(0.8)
    debug_logging(configurator)

    async def main() -> tuple[list[str], int]:
        config = GatewayConfig(api_key=key, port=0, stt_engine="pocketsphinx")
        server = await start_gateway(config)
        try:
            finals = await _transcribe(server.stt_url, key, pcm)
            audio = await _speak(server.tts_url, key, SPOKEN)
            return finals, audio
        finally:
            await server.aclose()

    finals, audio = run(main())
    assert finals == [PHRASES[0]] and audio > 0, (finals, audio)
    # The logs were on: our own DEBUG/INFO lines are there.
    assert any(r.name.startswith("voxlane.gateway") for r in caplog.records)
    assert not _leaks(caplog, [key, *PHRASES, SPOKEN, "purple elephants"])


class _LeakyEngine:
    """An STT engine whose failure message quotes the session's phrases (as pocketsphinx
    grammar errors and an engine worker's reported failure do)."""

    name = "leaky"

    def load(self) -> None:
        pass

    def new_recognizer(self, settings: p.SessionSettings) -> Any:
        raise RuntimeError(f"cannot compile grammar for {settings.phrases!r}")


def test_engine_failures_log_the_exception_type_not_the_request(
    debug_logging: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "k-" + secrets.token_hex(12)
    debug_logging("voxlane")
    # A real espeak-ng that cannot finish in time: its TimeoutExpired carries the command
    # line, text included.
    monkeypatch.setattr(EspeakEngine, "timeout_s", 0.001)

    async def main() -> tuple[Any, Any]:
        server = await start_gateway(GatewayConfig(api_key=key, port=0, stt_engine=_LeakyEngine()))
        try:
            tts_error: Any = None
            try:
                await _speak(server.tts_url, key, FAILING + " " + FAILING * 20)
            except Exception as exc:
                tts_error = exc
            stt = GatewaySTT(url=server.stt_url, api_key=key, phrases=PHRASES, max_retries=0)
            stream = stt.stream(sample_rate=16000)
            stt_error: Any = None
            try:
                stream.push_frame(AudioFrame(silence(0.02), 16000))
                async with asyncio.timeout(20):
                    async for _ in stream:
                        pass
            except Exception as exc:
                stt_error = exc
            finally:
                await stream.aclose()
            return tts_error, stt_error
        finally:
            await server.aclose()

    tts_error, stt_error = run(main())
    assert getattr(tts_error, "code", None) == 2011, tts_error
    assert "(2011)" in str(stt_error), stt_error
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("voxlane.gateway")]
    assert any("failed: TimeoutExpired (after 0.001s)" in m for m in messages), messages
    assert any("engine failed to start: RuntimeError" in m for m in messages), messages
    assert not _leaks(caplog, [key, FAILING, "orange giraffes", *PHRASES])
