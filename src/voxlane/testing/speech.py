"""Real synthesized speech for tests: Debian's flite (or espeak-ng) → PCM16 frames.

Used by tests that exercise real engines (the gateway, the local pipeline); requires the
Debian package ``flite`` or ``espeak-ng`` and, for resampling, ``soxr`` (gateway extra).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from voxlane.media import AudioFrame
from voxlane.wav import read_wav

_CACHE = Path(tempfile.gettempdir()) / "voxlane-speech-cache"


class SpeechSynthesisUnavailable(RuntimeError):
    """Neither flite nor espeak-ng is installed."""


def synthesize(text: str, sample_rate: int = 16000, *, voice: str = "flite") -> AudioFrame:
    """``text`` spoken by flite (default) or espeak-ng, as one frame at ``sample_rate``.

    Results are cached by text and voice in the temp directory (generated, never committed).
    """
    tool = shutil.which("flite" if voice == "flite" else "espeak-ng")
    if tool is None:
        raise SpeechSynthesisUnavailable(f"{voice} is not installed (apt-get install {voice})")
    _CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(f"{voice}:{text}".encode()).hexdigest()[:16]
    wav = _CACHE / f"{key}.wav"
    if not wav.exists():
        tmp = wav.with_suffix(".tmp.wav")
        cmd = (
            [tool, "-t", text, "-o", str(tmp)] if voice == "flite" else [tool, "-w", str(tmp), text]
        )
        subprocess.run(cmd, check=True, timeout=30, capture_output=True)
        tmp.replace(wav)
    return read_wav(wav, sample_rate=sample_rate)


def words(text: str) -> list[str]:
    """Lower-case words (letters and apostrophes), for transcript comparison."""
    return re.findall(r"[a-z']+", text.lower())


def word_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    """Levenshtein distance over words divided by the reference length."""
    ref, hyp = list(reference), list(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(1, len(ref))
