"""Write a call recording: caller on the left channel, agent on the right."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from voxlane.transports.local import CallRecorder


def write_call_wav(recorder: CallRecorder, path: Path, sample_rate: int = 16000) -> float:
    """Place every recorded frame at its time on its channel; returns the duration (s)."""
    tracks = (recorder.caller, recorder.agent)
    end = max((t + f.duration for track in tracks for t, f in track), default=0.0)
    n = int(end * sample_rate) + 1
    stereo = np.zeros((n, 2), dtype=np.int32)
    for channel, track in enumerate(tracks):
        for t, frame in track:
            if frame.sample_rate != sample_rate:
                continue  # the local room plays at one rate; other rates are not mixed here
            x = frame.to_numpy()
            start = round(t * sample_rate)
            stereo[start : start + len(x), channel] += x[: max(0, n - start)]
    pcm = np.clip(stereo, -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return end
