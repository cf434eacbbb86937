"""`voxlane demo` (what `make demo` runs), on virtual time."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

from voxlane.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_completes_the_call_and_writes_report_and_wav(tmp_path: Path) -> None:
    agent = ROOT / "examples" / "receptionist.py"
    assert main(["demo", "--fake", "--fast", "--out", str(tmp_path), "--agent", str(agent)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    # DESIGN §8 shape
    assert set(report) == {"session_id", "started_at", "ended_at", "close", "history", "usage"}
    close = report["close"]
    assert close["reason"] == "participant_disconnected"
    assert close["open_connections_after"] == 0
    assert close["duration_ms"] <= 4000
    assert all(s["outcome"] in ("ok", "timeout", "error", "aborted") for s in close["steps"])
    users = [h["text"] for h in report["history"] if h["role"] == "user"]
    assert len(users) == 3 and users[-1] == "thanks that is all goodbye"
    last_agent = [h for h in report["history"] if h["role"] == "assistant"][-1]
    assert last_agent["interrupted"]  # the caller hung up mid-reply
    assert any(h["role"] == "tool" and "booked" in h["text"] for h in report["history"])
    assert report["usage"]["llm_turns"] >= 5 and report["usage"]["tts_chars"] > 100

    with wave.open(str(tmp_path / "call.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 16000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    caller, agent_ch = np.abs(pcm[:, 0]).astype(int), np.abs(pcm[:, 1]).astype(int)
    assert caller.mean() > 100 and agent_ch.mean() > 100  # both voices are there
    # They mostly take turns: little overlap between the two channels.
    overlap = np.mean((caller > 1000) & (agent_ch > 1000))
    assert overlap < 0.1


def test_demo_reports_a_bad_agent_file(tmp_path: Path) -> None:
    bad = tmp_path / "agent.py"
    bad.write_text("x = 1\n")
    assert main(["demo", "--fake", "--fast", "--out", str(tmp_path), "--agent", str(bad)]) == 2
