"""Provider contracts (STT, TTS, LLM, VAD) and implementations."""

from voxlane.providers.base import ProviderStream
from voxlane.providers.llm import LLM, ChatChunk, LLMStream
from voxlane.providers.stt import STT, SpeechEvent, SpeechEventType, STTStream
from voxlane.providers.tts import TTS, TTSStream
from voxlane.providers.vad import VAD, VADEvent, VADEventType, VADStream

__all__ = [
    "LLM",
    "STT",
    "TTS",
    "VAD",
    "ChatChunk",
    "LLMStream",
    "ProviderStream",
    "STTStream",
    "SpeechEvent",
    "SpeechEventType",
    "TTSStream",
    "VADEvent",
    "VADEventType",
    "VADStream",
]
