"""The local voice stack: embedded gateway (STT + TTS), Silero VAD, local LLM server.

What ``voxlane demo`` and ``voxlane console`` run on by default — no cloud account, no GPU.
Everything started here is stopped on exit, bounded (the gateway's ``aclose``, the LLM
server's SIGTERM → SIGKILL ladder). Progress ("starting ...") goes to a ``progress``
callback (the CLI prints it dimmed on stderr); this module does no printing of its own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from voxlane.providers.gateway_stt import GatewaySTT
from voxlane.providers.gateway_tts import GatewayTTS
from voxlane.providers.llm import LLM
from voxlane.providers.stt import STT
from voxlane.providers.tts import TTS
from voxlane.providers.vad import VAD


@dataclass
class LocalStack:
    stt: STT
    tts: TTS
    vad: VAD | None
    llm: LLM
    caller_voice: TTS
    """A second voice (espeak-ng) for synthetic callers."""
    gateway_url: str
    api_key: str
    llm_base_url: str | None = None
    """The local LLM server's URL when this stack started it (None: ``llm`` was given)."""


def _quiet(message: str) -> None:
    """The default ``progress``: say nothing."""


def _silero() -> VAD | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    try:
        from voxlane.providers.silero_vad import SileroVAD
    except ImportError:
        return None
    vad: VAD = SileroVAD()
    return vad


def connect_stack(
    gateway_url: str,
    api_key: str,
    *,
    llm: LLM | None = None,
    llm_base_url: str | None = None,
    voice: str = "joe",
    max_tokens: int = 80,
) -> LocalStack:
    """Providers for a running gateway (and LLM server): what :func:`local_stack` yields,
    and what a job process builds from the URLs its worker passes it. ``llm`` wins over
    ``llm_base_url`` (an OpenAI-compatible server, SmolLM2 by default); one is required."""
    if llm is None:
        if llm_base_url is None:
            raise ValueError("connect_stack needs an llm or an llm_base_url")
        from voxlane.providers.openai_llm import OpenAICompatibleLLM

        llm = OpenAICompatibleLLM(
            base_url=llm_base_url,
            api_key="local",
            model="smollm2",
            temperature=0.0,
            max_tokens=max_tokens,
        )
    return LocalStack(
        stt=GatewaySTT(url=f"{gateway_url}/v1/stt", api_key=api_key),
        tts=GatewayTTS(url=f"{gateway_url}/v1/tts", api_key=api_key, voice=voice),
        vad=_silero(),
        llm=llm,
        caller_voice=GatewayTTS(url=f"{gateway_url}/v1/tts", api_key=api_key, voice="espeak"),
        gateway_url=gateway_url,
        api_key=api_key,
        llm_base_url=llm_base_url,
    )


@contextlib.asynccontextmanager
async def local_stack(
    *,
    progress: Callable[[str], object] | None = None,
    llm: LLM | None = None,
    gateway_url: str | None = None,
    api_key: str | None = None,
    stt_engine: str = "whisper",
    voice: str = "joe",
    max_tokens: int = 80,
) -> AsyncIterator[LocalStack]:
    """Start what is not given. ``llm=None`` → SmolLM2 on a local llama.cpp server.

    ``progress`` is called with a one-line message before each slow start (the gateway's
    model load, the LLM server's start)."""
    say = progress or _quiet
    async with contextlib.AsyncExitStack() as stack:
        if gateway_url is None:
            from voxlane.gateway import GatewayConfig, start_gateway

            api_key = secrets.token_hex(12)
            say(f"starting the embedded gateway ({stt_engine} + piper)...")
            server = await start_gateway(
                GatewayConfig(api_key=api_key, port=0, stt_engine=stt_engine)
            )
            stack.push_async_callback(server.aclose)
            gateway_url = server.url
        if api_key is None:
            raise ValueError("an external gateway needs its API key")
        llm_base_url = None
        if llm is None:
            from voxlane.providers.llama_server import LlamaServer

            say("starting the local LLM (SmolLM2-135M on llama.cpp)...")
            llama = LlamaServer()
            llm_base_url = await llama.start()
            stack.push_async_callback(llama.aclose)
        yield connect_stack(
            gateway_url, api_key, llm=llm, llm_base_url=llm_base_url, voice=voice,
            max_tokens=max_tokens,
        )
