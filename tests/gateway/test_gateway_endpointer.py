"""The energy endpointer on synthetic signals (pure, no engine)."""

from __future__ import annotations

import numpy as np

from voxlane.gateway.endpointer import EnergyEndpointer, SpeechEnd, SpeechStart

RATE = 16000


def tone(seconds: float, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def zeros(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def boundaries(signal: np.ndarray, chunk: int = 333) -> list[object]:
    ep = EnergyEndpointer(sample_rate=RATE)
    out: list[object] = []
    for i in range(0, signal.size, chunk):  # odd chunk sizes: frames straddle calls
        out += [s for s in ep.process(signal[i : i + chunk]) if not isinstance(s, np.ndarray)]
    return out


def test_one_utterance_has_start_and_end_near_the_tone() -> None:
    segs = boundaries(np.concatenate([zeros(1.0), tone(1.0), zeros(1.0)]))
    assert [type(s) for s in segs] == [SpeechStart, SpeechEnd]
    end = segs[1]
    assert isinstance(end, SpeechEnd)
    # Pre-roll (200 ms) before the onset; the end is the last voiced frame.
    assert abs(end.start_sample - int(0.8 * RATE)) <= 3 * 320 + 320
    assert abs(end.end_sample - int(2.0 * RATE)) <= 320


def test_short_gap_does_not_split_but_long_gap_does() -> None:
    sig = np.concatenate([tone(0.5), zeros(0.2), tone(0.5), zeros(0.8), tone(0.5), zeros(1.0)])
    kinds = [type(s).__name__ for s in boundaries(sig)]
    assert kinds == ["SpeechStart", "SpeechEnd", "SpeechStart", "SpeechEnd"]


def test_quiet_noise_is_not_speech_and_flush_ends_speech() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 50, RATE).astype(np.int16)  # about -56 dBFS
    assert boundaries(noise) == []
    ep = EnergyEndpointer(sample_rate=RATE)
    ep.process(tone(0.5))
    assert ep.in_speech
    end = ep.flush()
    assert isinstance(end, SpeechEnd) and not ep.in_speech
    assert ep.flush() is None


def test_long_speech_is_cut_at_max_utterance() -> None:
    ep = EnergyEndpointer(sample_rate=RATE, max_utterance_ms=1000)
    segs = [s for s in ep.process(tone(3.3)) if not isinstance(s, np.ndarray)]
    ends = [s for s in segs if isinstance(s, SpeechEnd)]
    assert len(ends) == 3
    assert all(e.end_sample - e.start_sample <= RATE for e in ends)
    assert ep.in_speech
