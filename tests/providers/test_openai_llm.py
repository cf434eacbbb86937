"""OpenAICompatibleLLM: the pure wire codec, a fault-injecting fake server on 127.0.0.1, and
a real llama.cpp server (llama-cpp-python) running SmolLM2-135M-Instruct.

Socket tests run on the real clock (``@pytest.mark.real_time``), each bounded with short
timeouts; each real-server test starts its own server (about a second).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fake_openai import Peer, fake_openai, finish_chunk, text_chunk, tool_chunk

from voxlane import AgentSession
from voxlane.aio.ledger import LEDGER
from voxlane.chat import ChatContext, ChatMessage, ToolCall, ToolSpec
from voxlane.errors import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderProtocolError,
    ProviderTimeoutError,
)
from voxlane.providers._openai_wire import (
    ReplyAssembler,
    SSEDecoder,
    WireError,
    forced_tool_choice,
    request_body,
)
from voxlane.providers.llama_server import LlamaServer, LlamaServerError, smollm2_model_path
from voxlane.providers.llm import ChatChunk
from voxlane.providers.openai_llm import OpenAICompatibleLLM, OpenAILLMStream
from voxlane.testing import FakeSTT, FakeTTS
from voxlane.testing.scenarios import ScriptAgent
from voxlane.transports import LocalRoom

WEATHER = ToolSpec(
    "get_weather",
    "Current weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def context(user: str = "Hello", system: str = "You are a helpful assistant.") -> ChatContext:
    ctx = ChatContext()
    ctx.add(ChatMessage("system", system))
    ctx.add(ChatMessage("user", user))
    return ctx


def llm_for(base_url: str, **kwargs: object) -> OpenAICompatibleLLM:
    kwargs.setdefault("api_key", "sk-test")
    kwargs.setdefault("model", "test-model")
    kwargs.setdefault("connect_timeout", 1.0)
    kwargs.setdefault("read_timeout", 1.0)
    return OpenAICompatibleLLM(base_url=base_url, **kwargs)  # type: ignore[arg-type]


async def collect(stream: OpenAILLMStream) -> list[ChatChunk]:
    async with stream:
        return [chunk async for chunk in stream]


# -- pure codec ---------------------------------------------------------------------------
def test_messages_and_tools_become_openai_json() -> None:
    ctx = context("Weather in Paris?")
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    ctx.add(ChatMessage("assistant", "", tool_calls=(call,)))
    ctx.add(ChatMessage("tool", "sunny", tool_call_id="call_1", name="get_weather"))
    body = request_body(
        ctx,
        [WEATHER],
        model="m",
        temperature=0.0,
        max_tokens=32,
        tool_choice="auto",
        extra_body={"seed": 7},
    )
    assert body["stream"] is True and body["seed"] == 7 and body["max_tokens"] == 32
    assert body["messages"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1", "name": "get_weather"},
    ]
    assert body["tools"] == [WEATHER.to_openai()] and body["tool_choice"] == "auto"
    assert "tools" not in request_body(ctx, [], model="m", temperature=None, max_tokens=None)


def test_sse_decoder_handles_split_lines_crlf_comments_and_multiline_data() -> None:
    decoder = SSEDecoder()
    stream = b': keep-alive\r\n\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: x\nid: 3\ndata: [DONE]\n\n'
    events: list[str] = []
    for i in range(len(stream)):  # one byte at a time: every split point
        events += decoder.feed(stream[i : i + 1])
    assert events == ['{"a":\n1}', "[DONE]"]
    assert decoder.flush() is None
    tail = SSEDecoder()
    assert tail.feed(b"data: last") == []
    assert tail.flush() == "last"


@pytest.mark.parametrize("line", [b"hello world\n", b"<html>\n", b"\xff\xfe\n"])
def test_sse_decoder_refuses_lines_that_are_not_sse(line: bytes) -> None:
    with pytest.raises(WireError):
        SSEDecoder().feed(line)


def test_assembler_joins_tool_call_fragments_by_index() -> None:
    asm = ReplyAssembler()
    out: list[ChatChunk] = []
    for chunk in (
        text_chunk("Let me check."),
        tool_chunk(0, call_id="call_a", name="get_weather", arguments='{"ci'),
        tool_chunk(1, call_id="call_b", name="get_weather"),
        tool_chunk(0, arguments='ty": "Paris"}'),
        tool_chunk(1, arguments='{"city": "Oslo"}'),
        finish_chunk("tool_calls"),
    ):
        out += asm.feed(json.dumps(chunk))
    assert out == [
        ChatChunk(delta="Let me check."),
        ChatChunk(
            tool_calls=(
                ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
                ToolCall("call_b", "get_weather", '{"city": "Oslo"}'),
            )
        ),
    ]
    assert asm.feed("[DONE]") == [] and asm.done and asm.finish_reason == "tool_calls"


def test_assembler_refuses_non_json_and_reports_stream_errors() -> None:
    with pytest.raises(WireError):
        ReplyAssembler().feed("{not json")
    with pytest.raises(WireError):
        ReplyAssembler().feed("[1, 2]")
    with pytest.raises(Exception, match="overloaded"):
        ReplyAssembler().feed('{"error": {"message": "overloaded", "type": "server_error"}}')


def test_settings_are_checked_when_the_provider_is_made() -> None:
    with pytest.raises(ValueError):
        OpenAICompatibleLLM(base_url="http://127.0.0.1:1/v1", model="m", read_timeout=0)
    for bad in ("ftp://127.0.0.1/v1", "127.0.0.1:8000/v1", "http:///v1"):
        with pytest.raises(ValueError, match="base_url"):
            OpenAICompatibleLLM(base_url=bad, model="m")
    llm = OpenAICompatibleLLM(base_url="http://127.0.0.1:1/v1/", model="m")
    assert llm.url == "http://127.0.0.1:1/v1/chat/completions"
    with pytest.raises(TypeError):  # not JSON: refused by chat(), before anything is sent
        OpenAICompatibleLLM(base_url="http://h/v1", model="m", extra_body={"x": object()}).chat(
            context()
        )
    assert LEDGER.count_open() == 0


# -- fake server: happy paths -------------------------------------------------------------
@pytest.mark.real_time
async def test_streams_text_deltas_and_sends_the_request() -> None:
    async def scenario(peer: Peer) -> None:
        await peer.head()
        for word in ("Hello", " there", ","):
            await peer.event(text_chunk(word))
        await peer.send("data: ")  # an event split across network chunks
        await peer.send(json.dumps(text_chunk(" friend.", "stop")) + "\n\n")
        await peer.event("[DONE]")
        await peer.end()

    async with fake_openai(scenario) as server:
        llm = llm_for(server.base_url, temperature=0.0, extra_body={"seed": 1})
        stream = llm.chat(context(), [WEATHER], tool_choice="auto")
        assert LEDGER.count_open() == 0  # nothing is sent before iteration
        deltas = []
        async for chunk in stream:
            deltas.append(chunk.delta)
            assert LEDGER.count_open() == 1
        # iterated to the end: released without aclose()
        assert LEDGER.count_open() == 0
        await stream.aclose()
    assert deltas == ["Hello", " there", ",", " friend."]
    assert stream.finish_reason == "stop"
    request = server.requests[0]
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["stream"] is True and request.body["seed"] == 1
    assert request.body["temperature"] == 0.0 and request.body["tool_choice"] == "auto"
    assert request.body["messages"][1] == {"role": "user", "content": "Hello"}


@pytest.mark.real_time
async def test_tool_call_deltas_split_across_chunks_become_complete_calls() -> None:
    async def scenario(peer: Peer) -> None:
        await peer.head()
        await peer.event(tool_chunk(0, call_id="call_1", name="get_weather", arguments=""))
        for piece in ('{"', "city", '": "Par', 'is"}'):
            await peer.event(tool_chunk(0, arguments=piece))
        raw = "data: " + json.dumps(tool_chunk(1, call_id="call_2", name="get_weather"))
        await peer.send(raw[:25])  # mid-line split
        await peer.send(raw[25:] + "\n\n")
        await peer.event(tool_chunk(1, arguments='{"city": "Rome"}'))
        await peer.event(finish_chunk("tool_calls"))
        await peer.event("[DONE]")
        await peer.end()

    async with fake_openai(scenario) as server:
        chunks = await collect(llm_for(server.base_url).chat(context(), [WEATHER]))
    assert chunks == [
        ChatChunk(
            tool_calls=(
                ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
                ToolCall("call_2", "get_weather", '{"city": "Rome"}'),
            )
        )
    ]


# -- fake server: errors ------------------------------------------------------------------
@pytest.mark.real_time
@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, ProviderAuthError, False),
        (403, ProviderAuthError, False),
        (429, ProviderError, True),
        (500, ProviderError, True),
        (503, ProviderError, True),
        (400, ProviderError, False),
    ],
)
async def test_http_errors_are_classified(
    status: int, kind: type[ProviderError], retryable: bool
) -> None:
    async def scenario(peer: Peer) -> None:
        await peer.error(status, "nope: bad key or busy")

    async with fake_openai(scenario) as server:
        stream = llm_for(server.base_url).chat(context())
        with pytest.raises(kind) as caught:
            await collect(stream)
    assert caught.value.retryable is retryable
    assert caught.value.code == status
    assert f"HTTP {status}" in str(caught.value) and "bad key or busy" in str(caught.value)
    assert LEDGER.count_open() == 0


@pytest.mark.real_time
@pytest.mark.parametrize(
    "garbage",
    [
        "this is not server-sent events\n\n",
        "data: {this is not json}\n\n",
        'data: {"choices": "nope"}\n\n',
    ],
)
async def test_garbage_is_a_protocol_error(garbage: str) -> None:
    async def scenario(peer: Peer) -> None:
        await peer.head()
        await peer.event(text_chunk("ok"))
        await peer.send(garbage)
        await peer.stall()

    async with fake_openai(scenario) as server:
        stream = llm_for(server.base_url).chat(context())
        async with stream:
            assert (await stream.__anext__()).delta == "ok"
            with pytest.raises(ProviderProtocolError) as caught:
                await stream.__anext__()
            assert LEDGER.count_open() == 0  # failed: released at once
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()
    assert caught.value.retryable is False
    assert caught.value.__cause__ is not None


@pytest.mark.real_time
async def test_json_body_instead_of_event_stream_is_a_protocol_error() -> None:
    async def scenario(peer: Peer) -> None:
        await peer.head(200, "application/json")
        await peer.send('{"choices": []}')
        await peer.end()

    async with fake_openai(scenario) as server:
        with pytest.raises(ProviderProtocolError, match="event stream"):
            await collect(llm_for(server.base_url).chat(context()))


@pytest.mark.real_time
@pytest.mark.parametrize("before_headers", [False, True])
async def test_a_stall_longer_than_read_timeout_times_out(before_headers: bool) -> None:
    async def scenario(peer: Peer) -> None:
        if not before_headers:
            await peer.head()
            await peer.event(text_chunk("Hi"))
        await peer.stall()

    async with fake_openai(scenario) as server:
        stream = llm_for(server.base_url, read_timeout=0.3).chat(context())
        async with stream:
            if not before_headers:
                assert (await stream.__anext__()).delta == "Hi"
            start = time.monotonic()
            with pytest.raises(ProviderTimeoutError) as caught:
                await stream.__anext__()
            elapsed = time.monotonic() - start
            assert LEDGER.count_open() == 0
    assert caught.value.retryable is True
    assert 0.25 < elapsed < 1.5


@pytest.mark.real_time
@pytest.mark.parametrize("chunked_end", [True, False])
async def test_server_closing_without_done_is_a_retryable_connection_error(
    chunked_end: bool,
) -> None:
    async def scenario(peer: Peer) -> None:
        await peer.head()
        await peer.event(text_chunk("Half a"))
        if chunked_end:
            await peer.end()  # a well-formed HTTP body, but no [DONE]
        peer.writer.close()  # otherwise: cut mid-body

    async with fake_openai(scenario) as server:
        stream = llm_for(server.base_url).chat(context())
        async with stream:
            assert (await stream.__anext__()).delta == "Half a"
            with pytest.raises(ProviderConnectionError, match="stream ended before completion"):
                await stream.__anext__()
    assert LEDGER.count_open() == 0


@pytest.mark.real_time
async def test_connection_refused_is_a_retryable_connection_error() -> None:
    async with fake_openai(Peer.stall) as server:
        url = server.base_url
    # the server is gone now: nothing listens on that port
    with pytest.raises(ProviderConnectionError, match="cannot connect") as caught:
        await collect(llm_for(url).chat(context()))
    assert caught.value.retryable is True
    assert LEDGER.count_open() == 0


@pytest.mark.real_time
async def test_keep_alive_comments_do_not_extend_the_chunk_deadline() -> None:
    async def scenario(peer: Peer) -> None:
        await peer.head()
        while not peer.stop.is_set():
            await peer.send(": keep-alive\n\n")
            await asyncio.sleep(0.05)

    async with fake_openai(scenario) as server:
        stream = llm_for(server.base_url, read_timeout=0.3).chat(context())
        start = time.monotonic()
        with pytest.raises(ProviderTimeoutError, match="no chunk within"):
            await collect(stream)
        assert time.monotonic() - start < 1.0
    assert LEDGER.count_open() == 0


@pytest.mark.real_time
@pytest.mark.parametrize(
    ("kind", "retryable"), [("server_error", True), ("invalid_request", False)]
)
async def test_an_error_event_in_the_stream_is_a_provider_error(kind: str, retryable: bool) -> None:
    async def scenario(peer: Peer) -> None:
        await peer.head()
        await peer.event(text_chunk("Hel"))
        await peer.event({"error": {"message": "model crashed", "type": kind}})
        await peer.stall()

    async with fake_openai(scenario) as server:
        with pytest.raises(ProviderError, match="model crashed") as caught:
            await collect(llm_for(server.base_url).chat(context()))
    assert caught.value.retryable is retryable
    assert LEDGER.count_open() == 0


# -- fake server: closing -----------------------------------------------------------------
async def _stalled(peer: Peer) -> None:
    await peer.head()
    await peer.event(text_chunk("Once upon"))
    await peer.stall()


@pytest.mark.real_time
async def test_aclose_mid_stream_releases_and_closes_the_connection() -> None:
    async with fake_openai(_stalled) as server:
        stream = llm_for(server.base_url, read_timeout=30.0).chat(context())
        assert (await stream.__anext__()).delta == "Once upon"
        assert LEDGER.count_open() == 1
        start = time.monotonic()
        await stream.aclose()
        assert time.monotonic() - start < 0.5
        assert LEDGER.count_open() == 0
        assert await server.peers[0].wait_disconnected(1.0)
        await stream.aclose()  # idempotent
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()


@pytest.mark.real_time
async def test_aclose_after_the_waiter_was_cancelled() -> None:
    async with fake_openai(_stalled) as server:
        stream = llm_for(server.base_url, read_timeout=30.0).chat(context())
        assert (await stream.__anext__()).delta == "Once upon"
        waiter = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.05)
        waiter.cancel()
        done, _ = await asyncio.wait({waiter}, timeout=1.0)
        assert done and waiter.cancelled()
        assert LEDGER.count_open() == 1  # cancelling a read does not close the stream...
        await stream.aclose()  # ...aclose() does
        assert LEDGER.count_open() == 0
        assert await server.peers[0].wait_disconnected(1.0)


@pytest.mark.real_time
async def test_cancelled_while_connecting_then_aclose() -> None:
    async def slow_head(peer: Peer) -> None:
        await peer.stall()

    async with fake_openai(slow_head) as server:
        stream = llm_for(server.base_url, read_timeout=30.0).chat(context())
        waiter = asyncio.ensure_future(stream.__anext__())
        await asyncio.wait_for(server.connected.wait(), 1.0)
        waiter.cancel()
        await asyncio.wait({waiter}, timeout=1.0)
        assert waiter.cancelled()
        await stream.aclose()
        assert LEDGER.count_open() == 0


@pytest.mark.real_time
async def test_aclose_from_another_task_while_a_read_is_pending() -> None:
    async with fake_openai(_stalled) as server:
        stream = llm_for(server.base_url, read_timeout=30.0).chat(context())
        assert (await stream.__anext__()).delta == "Once upon"
        reader = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.05)
        await asyncio.wait({asyncio.ensure_future(stream.aclose())}, timeout=1.0)
        done, _ = await asyncio.wait({reader}, timeout=1.0)
        assert done, "the pending read must end when the stream is closed"
        with pytest.raises(StopAsyncIteration):
            reader.result()
        assert LEDGER.count_open() == 0


@pytest.mark.real_time
async def test_abort_releases_at_once_and_ends_a_pending_read() -> None:
    async with fake_openai(_stalled) as server:
        stream = llm_for(server.base_url, read_timeout=30.0).chat(context())
        assert (await stream.__anext__()).delta == "Once upon"
        reader = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.05)
        stream.abort()
        assert LEDGER.count_open() == 0
        done, _ = await asyncio.wait({reader}, timeout=1.0)
        assert done
        with pytest.raises(StopAsyncIteration):
            reader.result()
        await stream.aclose()  # idempotent after abort()
        assert await server.peers[0].wait_disconnected(1.0)


@pytest.mark.real_time
async def test_a_cancelled_aclose_still_releases() -> None:
    async with fake_openai(_stalled) as server:
        stream = llm_for(server.base_url, read_timeout=30.0).chat(context())
        assert (await stream.__anext__()).delta == "Once upon"
        closer = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)
        closer.cancel()
        await asyncio.wait({closer}, timeout=1.0)
        assert closer.done()
        assert LEDGER.count_open() == 0
        assert await server.peers[0].wait_disconnected(1.0)


@pytest.mark.real_time
async def test_session_close_while_the_llm_streams_releases_it_within_the_budget() -> None:
    async with fake_openai(_stalled) as server:
        room = LocalRoom()
        llm = llm_for(server.base_url, read_timeout=30.0)
        session = AgentSession(stt=FakeSTT(), llm=llm, tts=FakeTTS(), close_timeout=2.0)
        await session.start(ScriptAgent(greeting=None), room=room)
        session.generate_reply(user_input="Tell me a story")
        await asyncio.wait_for(server.connected.wait(), 2.0)
        await asyncio.sleep(0.2)  # "Once upon" is spoken; then the server stalls
        start = time.monotonic()
        event = await session.aclose()
        assert time.monotonic() - start < 2.0
        assert event.report.open_connections_after == 0
        assert await server.peers[0].wait_disconnected(1.0)


# -- a real OpenAI-compatible server: llama-cpp-python + SmolLM2-135M-Instruct -------------
def _llama_missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (pip install -e '.[llm]')"
    try:
        smollm2_model_path()
    except LlamaServerError as exc:
        return str(exc)
    return None


@asynccontextmanager
async def llama_server(*extra_args: str) -> AsyncIterator[LlamaServer]:
    """SmolLM2 on a llama.cpp server of its own (about a second to start)."""
    missing = _llama_missing()
    if missing:
        pytest.skip(missing)
    # chatml-function-calling: ChatML, plus grammar-constrained calls for a forced tool_choice
    server = LlamaServer(
        chat_format="chatml-function-calling", ready_timeout=60.0, extra_args=extra_args
    )
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


def local_llm(server: LlamaServer, **kwargs: object) -> OpenAICompatibleLLM:
    kwargs.setdefault("temperature", 0.0)
    kwargs.setdefault("max_tokens", 48)
    kwargs.setdefault("extra_body", {"seed": 42})
    kwargs.setdefault("read_timeout", 20.0)
    return llm_for(server.base_url, model="smollm2", **kwargs)


async def _complete_unstreamed(server: LlamaServer, user: str) -> str:
    """The same request as ``local_llm(server).chat(context(user))``, not streamed."""
    body = {
        "model": "smollm2",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": user},
        ],
        "temperature": 0.0,
        "max_tokens": 48,
        "seed": 42,
        "stream": False,
    }
    async with httpx.AsyncClient(timeout=20.0, trust_env=False) as client:
        resp = await client.post(f"{server.base_url}/chat/completions", json=body)
    resp.raise_for_status()
    return str(resp.json()["choices"][0]["message"]["content"])


@pytest.mark.real_time
async def test_real_server_streams_text_in_several_deltas() -> None:
    question = "What is the capital of France?"
    # --n_batch 1: every token is evaluated alone, so the numbers (and the greedy answer)
    # do not depend on how much of the prompt the server's KV cache already held. With
    # batches, the first request (whole prompt in batches) and a repeat (one new token)
    # round differently, and a 135M model's near-tie can flip: seen here, "La femme de
    # France..." then "The capital of France is Paris.".
    async with llama_server("--n_batch", "1") as server:
        stream = local_llm(server).chat(context(question))
        chunks = await collect(stream)
        whole = await _complete_unstreamed(server, question)
    deltas = [c.delta for c in chunks if c.delta]
    assert len(deltas) >= 3, deltas
    # Greedy decoding: the streamed deltas put together are exactly the server's own
    # non-streamed answer to the same request — the prompt got through intact, and nothing
    # was lost or reordered between SSE events.
    assert "".join(deltas) == whole
    assert not any(c.tool_calls for c in chunks)
    assert stream.finish_reason in ("stop", "length")
    assert LEDGER.count_open() == 0


@pytest.mark.real_time
async def test_real_server_calls_a_forced_tool() -> None:
    # A 135M model does not choose tools on its own: the chatml-function-calling format
    # with a forced tool_choice constrains its output to the function's JSON schema.
    spec = ToolSpec(
        "get_weather",
        "Current weather in a city",
        {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": False,
        },
    )
    async with llama_server() as server:
        llm = local_llm(server, max_tokens=24, tool_choice=forced_tool_choice("get_weather"))
        chunks = await collect(llm.chat(context("What is the weather in Paris?"), [spec]))
    calls = [call for c in chunks for call in c.tool_calls]
    assert len(calls) == 1, chunks
    assert calls[0].name == "get_weather" and calls[0].call_id
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    assert LEDGER.count_open() == 0


@pytest.mark.real_time
async def test_real_server_killed_mid_stream_is_a_quick_retryable_error() -> None:
    async with llama_server() as server:
        assert server.process is not None
        pid = server.process.pid
        llm = local_llm(server, max_tokens=1500)
        stream = llm.chat(context("Count from 1 to 500, separated by commas."))
        received = []
        async with stream:
            with pytest.raises(ProviderConnectionError) as caught:
                async for chunk in stream:
                    received.append(chunk.delta)
                    if len(received) == 5:
                        os.kill(pid, signal.SIGKILL)
                        killed_at = time.monotonic()
            elapsed = time.monotonic() - killed_at
            assert LEDGER.count_open() == 0
    assert caught.value.retryable is True
    assert "stream ended before completion" in str(caught.value)
    assert elapsed < 2.0, elapsed
    assert len(received) >= 5


@pytest.mark.real_time
async def test_a_session_turn_on_the_real_server() -> None:
    async with llama_server() as server:
        session = AgentSession(stt=FakeSTT(), llm=local_llm(server), tts=FakeTTS())
        agent = ScriptAgent(greeting=None, instructions="You are a helpful assistant.")
        await session.start(agent, room=LocalRoom())
        session.generate_reply(user_input="What is the capital of France?")
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not any(
            m.role == "assistant" for m in session.history
        ):
            await asyncio.sleep(0.05)
        event = await session.aclose()
    replies = [m.text for m in event.history if m.role == "assistant"]
    assert replies and replies[0].strip(), event.history
    assert event.report.open_connections_after == 0
