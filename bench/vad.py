"""SileroVAD cost on this machine: model load, per-window inference, real-time factor.

Audio: ``--seconds`` of flite speech alternating with silence (white noise if flite is
missing), fed as 20 ms frames, like a call. Measured, on the real clock:

* ``model``: one ONNX ``run`` per 32 ms window (512 samples at 16 kHz), p50/p99/max.
* ``push_16k`` / ``push_48k``: ``SileroVADStream.push_frame`` per 20 ms frame at 16 and
  48 kHz input — everything the session's input path pays (resampling, chunking, the model
  when a window completes, the segmenter), p50/p99/max.
* ``rtf``: processing time / audio duration (0.003 = 0.3 % of one core).

    python bench/vad.py [--seconds 60] [--json]

With ``--json`` exactly one JSON object is printed on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np

from voxlane.media import AudioFrame, split_frames
from voxlane.providers import silero_vad as sv

SENTENCES = [
    "Hello, I would like to book a table for two tonight please.",
    "Can you tell me when you are open on Saturday?",
    "Thanks, that is all I needed, goodbye.",
]


def test_audio(seconds: float, rate: int) -> AudioFrame:
    parts: list[bytes] = []
    total = 0.0
    i = 0
    try:
        from voxlane.testing.speech import synthesize

        clips = [synthesize(s, rate) for s in SENTENCES]
    except Exception:  # no flite: noise bursts keep the model busy the same way
        rng = np.random.default_rng(0)
        noise = (rng.standard_normal(rate * 3) * 2000).astype("<i2")
        clips = [AudioFrame.from_numpy(noise, rate)]
    gap = AudioFrame.silence(1.0, rate)
    while total < seconds:
        clip = clips[i % len(clips)]
        parts += [clip.data, gap.data]
        total += clip.duration + gap.duration
        i += 1
    return AudioFrame(b"".join(parts), rate)


def pct(xs: list[float]) -> dict[str, float]:
    a = np.array(xs) * 1000
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 4),
        "p99_ms": round(float(np.percentile(a, 99)), 4),
        "max_ms": round(float(a.max()), 4),
        "n": len(xs),
    }


def bench_model(model: Any, audio: AudioFrame) -> dict[str, Any]:
    x = audio.to_numpy().astype(np.float32) / 32768.0
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros(64, dtype=np.float32)
    times: list[float] = []
    for i in range(0, len(x) - 512, 512):
        inp = np.concatenate((context, x[i : i + 512]))[np.newaxis, :]
        t0 = time.perf_counter()
        _, state = model.run(inp, state, 16000)
        times.append(time.perf_counter() - t0)
        context = inp[0, -64:]
    out = pct(times[10:])  # the first runs warm the session up
    out["rtf"] = round(sum(times) / audio.duration, 5)
    return out


def bench_stream(vad: sv.SileroVAD, audio: AudioFrame) -> dict[str, Any]:
    stream = vad.stream(sample_rate=audio.sample_rate)
    times: list[float] = []
    for frame in split_frames(audio, 0.02):
        t0 = time.perf_counter()
        stream.push_frame(frame)
        times.append(time.perf_counter() - t0)
    stream.end_input()
    stats = stream.statistics()
    stream.abort()
    out = pct(times[10:])
    out["rtf"] = round(sum(times) / audio.duration, 5)
    out["events"] = stats.events_sent
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    path = sv.default_model_path()
    t0 = time.perf_counter()
    model = sv._SileroModel(path)  # a fresh load, timed (SileroVAD shares one per process)
    load_ms = (time.perf_counter() - t0) * 1000
    vad = sv.SileroVAD()
    a16, a48 = test_audio(args.seconds, 16000), test_audio(args.seconds, 48000)
    import onnxruntime

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "model": path.name,
        },
        "audio_s": round(a16.duration, 2),
        "model_load_ms": round(load_ms, 1),
        "model": bench_model(model, a16),
        "push_16k": bench_stream(vad, a16),
        "push_48k": bench_stream(vad, a48),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"model load: {result['model_load_ms']} ms ({path.name})")
        for key in ("model", "push_16k", "push_48k"):
            r: Any = result[key]
            print(
                f"{key:9} p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
                f"max {r['max_ms']:.3f} ms  rtf {r['rtf']:.4f}  (n={r['n']})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
