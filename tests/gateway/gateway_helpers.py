"""Shared helpers of the gateway tests: speech synthesis, a tiny client, WER."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voxlane.gateway import protocol as p

API_KEY = "test-key"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}

#: Test phrases: plain words (no digits, no names) so that transcripts compare word by word.
SENTENCES = (
    "open the front door and turn on the lights",
    "what is the weather like today",
    "i would like to book a table for two",
    "thank you very much for your help",
    "can you tell me the time",
)


def synthesize(text: str, workdir: Path, rate: int = 16000) -> bytes:
    """Speak ``text`` with Debian's flite; return PCM16 mono at ``rate`` (soxr resampled)."""
    flite = shutil.which("flite")
    if flite is None:
        pytest.skip("flite is not installed (apt-get install flite)")
    out = workdir / f"tts_{abs(hash(text)) % 10**8}.wav"
    if not out.exists():
        subprocess.run([flite, "-t", text, "-o", str(out)], check=True, timeout=30)
    with wave.open(str(out)) as w:
        src_rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if src_rate != rate:
        import soxr

        samples = soxr.resample(samples, src_rate, rate)
    return np.asarray(samples, dtype="<i2").tobytes()


def silence(seconds: float, rate: int = 16000) -> bytes:
    return b"\x00\x00" * int(seconds * rate)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_errors(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance over words (substitutions + insertions + deletions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


@asynccontextmanager
async def client(
    url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[ClientConnection]:
    async with connect(
        url,
        additional_headers=HEADERS if headers is None else headers,
        open_timeout=5,
        close_timeout=2,
    ) as ws:
        yield ws


async def create(ws: ClientConnection, **settings: Any) -> dict[str, Any]:
    msg = p.SessionCreate(settings=p.SessionSettings(**settings))
    await ws.send(p.encode_client_message(msg))
    return await next_event(ws)


async def next_event(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        raw = await ws.recv()
    assert isinstance(raw, str), raw
    obj: dict[str, Any] = json.loads(raw)
    return obj


async def events_until(
    ws: ClientConnection, last_type: str, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Collect events up to and including the first of type ``last_type``."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            evt = await next_event(ws, timeout)
            out.append(evt)
            if evt["type"] == last_type:
                return out


async def drain_until_closed(ws: ClientConnection, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Read events until the server closes; return them (close code in ws.close_code)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        try:
            while True:
                raw = await ws.recv()
                out.append(json.loads(raw))
        except ConnectionClosed:
            return out


async def stream(
    ws: ClientConnection, pcm: bytes, *, frame_bytes: int = 640, pace_s: float = 0.0
) -> None:
    """Send ``pcm`` in frames (640 bytes = 20 ms at 16 kHz); ``pace_s`` sleep per frame."""
    for i in range(0, len(pcm), frame_bytes):
        await ws.send(pcm[i : i + frame_bytes])
        await asyncio.sleep(pace_s)


@asynccontextmanager
async def gateway(faults: Any = None, **config: Any) -> AsyncIterator[Any]:
    """A gateway on 127.0.0.1, ephemeral port; always closed (bounded) on exit."""
    from voxlane.gateway import GatewayConfig, start_gateway

    config.setdefault("stt_engine", "pocketsphinx")
    server = await start_gateway(GatewayConfig(api_key=API_KEY, **config), faults=faults)
    try:
        yield server
    finally:
        await server.aclose()


def run(coro: Any, timeout: float = 60.0) -> Any:
    """Run one test coroutine on a fresh loop, bounded."""

    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def logged_problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records at ERROR or above, and tracebacks: any of ours, a library's at WARNING or
    above (websockets logs some at DEBUG when debug logging is on, by design)."""
    return [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR
        or (r.exc_info and (r.levelno >= logging.WARNING or r.name.startswith("voxlane")))
    ]
