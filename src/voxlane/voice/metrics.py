"""Per-turn latency timestamps (the ``turn_metrics`` event's payload)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TurnMetrics:
    """Loop-clock timestamps of one user turn and the reply it got (``turn_metrics`` event,
    emitted when the reply's first audio frame is handed to the output). None = not seen."""

    speech_ended_at: float | None = None  # VAD (or STT) end of speech
    final_at: float | None = None  # last final transcript of the turn
    committed_at: float | None = None  # turn committed to history
    llm_started_at: float | None = None
    llm_first_token_at: float | None = None
    tts_first_audio_at: float | None = None
    first_audio_at: float | None = None  # first reply frame handed to the audio output

    def parts_ms(self) -> dict[str, float]:
        """Stage durations in ms (missing stages are left out)."""

        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else (b - a) * 1000

        parts = {
            "end_of_speech_to_final": ms(self.speech_ended_at, self.final_at),
            "end_of_speech_to_commit": ms(self.speech_ended_at, self.committed_at),
            "commit_to_llm_start": ms(self.committed_at, self.llm_started_at),
            "llm_first_token": ms(self.llm_started_at, self.llm_first_token_at),
            "first_token_to_tts_audio": ms(self.llm_first_token_at, self.tts_first_audio_at),
            "tts_audio_to_output": ms(self.tts_first_audio_at, self.first_audio_at),
            "end_of_speech_to_first_audio": ms(self.speech_ended_at, self.first_audio_at),
        }
        return {k: v for k, v in parts.items() if v is not None}
