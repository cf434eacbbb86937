"""Write a call recording: caller on the left channel, agent on the right."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from voxlane.transports.local import CallRecorder
from voxlane.voice.report import REPORT_MODE


def write_call_wav(
    recorder: CallRecorder, path: Path, sample_rate: int = 16000, *, mode: int = REPORT_MODE
) -> float:
    """Place every recorded frame at its time on its channel; returns the duration (s).
    The file gets exactly ``mode`` (default 0600: a recording of the call is as private
    as its transcript)."""
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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(fd, mode)  # exactly: an existing file keeps its old mode otherwise
        with wave.open(f, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(pcm.tobytes())
    return end
