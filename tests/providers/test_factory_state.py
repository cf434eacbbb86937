"""Provider factories keep no per-call state: a closed stream is not retained by its factory.

One factory instance serves every call of a process (``voxlane sip --providers local``
shares one ``GatewaySTT``), so anything it kept per stream would grow with every call.
Regression: ``GatewaySTT.streams`` held every stream it ever opened.
"""

from __future__ import annotations

import gc
import importlib.util
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from voxlane.chat import ChatContext
from voxlane.providers.gateway_stt import GatewaySTT
from voxlane.providers.gateway_tts import GatewayTTS
from voxlane.providers.openai_llm import OpenAICompatibleLLM

# Nothing listens here: a stream that gets to connect is refused at once.
NOWHERE = "ws://127.0.0.1:9"
CALLS = 20


def _gateway_stt() -> tuple[object, Callable[[], Any]]:
    stt = GatewaySTT(url=f"{NOWHERE}/v1/stt", api_key="k", max_retries=0)
    return stt, stt.stream


def _gateway_tts() -> tuple[object, Callable[[], Any]]:
    tts = GatewayTTS(url=f"{NOWHERE}/v1/tts", api_key="k")
    return tts, tts.stream


def _openai_llm() -> tuple[object, Callable[[], Any]]:
    llm = OpenAICompatibleLLM(base_url="http://127.0.0.1:9/v1", api_key="k", model="m")
    return llm, lambda: llm.chat(ChatContext())


def _silero_vad() -> tuple[object, Callable[[], Any]]:
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("pip install 'voxlane[vad]'")
    from voxlane.providers.silero_vad import SileroVAD

    vad = SileroVAD()
    return vad, vad.stream


@pytest.mark.parametrize(
    "make", [_gateway_stt, _gateway_tts, _openai_llm, _silero_vad],
    ids=["gateway-stt", "gateway-tts", "openai-llm", "silero-vad"],
)
async def test_closed_streams_are_not_retained_by_their_factory(
    make: Callable[[], tuple[object, Callable[[], Any]]],
) -> None:
    factory, open_stream = make()
    refs: list[weakref.ref[Any]] = []
    for _ in range(CALLS):  # one stream per call, each closed when its call ends
        stream = open_stream()
        refs.append(weakref.ref(stream))
        await stream.aclose()
        del stream
    gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert not alive, f"{type(factory).__name__} retains {len(alive)} closed stream(s)"
    assert factory is not None  # the factory itself lives on, shared by the next call
