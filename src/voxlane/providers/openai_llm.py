"""An LLM provider for any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama,
llama.cpp, ...), streaming over HTTP with server-sent events.

Each :meth:`OpenAICompatibleLLM.chat` returns an :class:`OpenAILLMStream`; the request is sent
when the stream is first iterated. While the request/response is open the stream holds one
entry in the resource ledger; it is released when the reply ends (``[DONE]``), when the
stream fails, and by ``aclose()``/``abort()`` — whichever comes first.

Every wait is bounded: connecting by ``connect_timeout``, each chunk by ``read_timeout``.
No retries here: errors carry ``retryable`` and the session decides.

Errors (all :class:`~voxlane.errors.ProviderError`, cause chained)::

    HTTP 401/403                    ProviderAuthError          fatal
    HTTP 408, no chunk in time      ProviderTimeoutError       retryable
    HTTP 429, 5xx                   ProviderError              retryable
    other HTTP 4xx                  ProviderError              fatal
    cannot connect, stream cut      ProviderConnectionError    retryable
      (incl. no [DONE] before EOF)
    {"error": ...} in the stream    ProviderError              retryable if server-side
    not SSE / not JSON              ProviderProtocolError      fatal
    unsupported URL scheme          ProviderConfigError        fatal

``abort()`` shuts the TCP socket down at once (sync); the HTTP client objects are then freed
when the stream is next iterated, or by the garbage collector. One connection per stream, no
pooling: nothing stays open after a stream is released.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from voxlane.aio.clock import DEFAULT_CLOCK, Clock
from voxlane.chat import ChatContext, ToolSpec
from voxlane.errors import (
    ClosedError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderProtocolError,
    ProviderTimeoutError,
)
from voxlane.providers._openai_wire import (
    ReplyAssembler,
    SSEDecoder,
    StreamError,
    WireError,
    forced_tool_choice,
    request_body,
)
from voxlane.providers.llm import LLM, ChatChunk, LLMStream

__all__ = ["OpenAICompatibleLLM", "OpenAILLMStream", "forced_tool_choice"]

_ERROR_BODY_LIMIT = 2048
"""Bytes of an HTTP error body quoted in the error message."""


class OpenAICompatibleLLM(LLM):
    """Streaming chat against ``POST {base_url}/chat/completions``.

    ``tool_choice`` (``"auto"``, ``"required"``, ``"none"`` or
    ``{"type": "function", "function": {"name": ...}}``) is sent when tools are given.
    ``extra_body`` is merged into every request body last (``seed``, ``top_k``, ...).
    ``trust_env=True`` honours the HTTP(S)_PROXY, NO_PROXY and SSL_CERT_FILE variables.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "",
        model: str,
        temperature: float | None = 0.7,
        max_tokens: int | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        trust_env: bool = False,
        label: str = "openai-llm",
    ) -> None:
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("connect_timeout and read_timeout must be positive")
        self.base_url = base_url.rstrip("/")
        url = httpx.URL(self.base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be http(s)://host[:port]/path, not {base_url!r}")
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.tool_choice = tool_choice
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.extra_body = dict(extra_body or {})
        self.trust_env = trust_env
        self.label = label
        self._headers = {"Accept": "text/event-stream", **(extra_headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def chat(
        self,
        ctx: ChatContext,
        tools: Sequence[ToolSpec] = (),
        *,
        tool_choice: str | Mapping[str, Any] | None = None,
    ) -> OpenAILLMStream:
        """A stream for one reply. Nothing is sent until it is iterated; ``aclose()`` it
        (or use ``async with``) unless it was iterated to its end."""
        body = request_body(
            ctx,
            tools,
            model=self.model,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            tool_choice=tool_choice if tool_choice is not None else self.tool_choice,
            extra_body=self.extra_body,
        )
        return OpenAILLMStream(self, body)

    def http_client(self) -> httpx.AsyncClient:
        """A new HTTP client with this provider's headers and timeouts; the caller closes it.
        One per stream: a stream's connection is its own, released with the stream."""
        timeout = httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.connect_timeout,
            pool=self.connect_timeout,
        )
        return httpx.AsyncClient(headers=self._headers, timeout=timeout, trust_env=self.trust_env)


class _State(enum.Enum):
    NEW = "new"  # not sent yet
    CONNECTING = "connecting"  # request sent, waiting for the response head
    STREAMING = "streaming"  # response open, chunks arriving
    ENDED = "ended"  # [DONE] seen or failed: connection released; iteration stops
    CLOSED = "closed"  # aclose()/abort(): connection released


class OpenAILLMStream(LLMStream):
    """One streaming reply. Yields :class:`ChatChunk` s: text deltas as they arrive and,
    once complete, the tool calls. Single consumer."""

    def __init__(self, owner: OpenAICompatibleLLM, body: dict[str, Any]) -> None:
        super().__init__(label=owner.label)
        self._owner = owner
        self._body = body
        self._content = json.dumps(body).encode()  # a TypeError here names the bad field
        self._state = _State.NEW
        self._client: httpx.AsyncClient | None = None
        self._response: httpx.Response | None = None
        self._body_iter: AsyncIterator[bytes] | None = None
        self._decoder = SSEDecoder()
        self._assembler = ReplyAssembler()
        self._ready: deque[ChatChunk] = deque()
        self._interrupted = False
        self._clock: Clock = DEFAULT_CLOCK

    @property
    def request_body(self) -> dict[str, Any]:
        """The JSON body this stream sends (a copy)."""
        return copy.deepcopy(self._body)

    @property
    def finish_reason(self) -> str | None:
        """Why the reply ended (``stop``, ``length``, ``tool_calls``), once it has."""
        return self._assembler.finish_reason

    async def __aenter__(self) -> OpenAILLMStream:
        return self

    # -- iteration ------------------------------------------------------------------------
    async def __anext__(self) -> ChatChunk:
        if self._ready:
            return self._ready.popleft()
        if self._state is _State.CLOSED:
            await self._close_http()  # after abort(): free what it could not (sync)
            raise StopAsyncIteration
        if self._state is _State.ENDED:
            raise StopAsyncIteration
        if self._interrupted:
            raise ClosedError(
                f"{self.label}: a read was cancelled mid-stream; the stream cannot resume"
            )
        try:
            if self._state is _State.NEW:
                await self._connect()
            # httpx bounds each socket read by read_timeout; this bounds the wait for a
            # chunk when the server trickles keep-alive comments and nothing else.
            deadline = self._clock.now() + self._owner.read_timeout
            while not self._ready:
                if not await self._read_some():
                    break
                if not self._ready and self._clock.now() > deadline:
                    raise ProviderTimeoutError(
                        f"no chunk within {self._owner.read_timeout:g}s", provider=self.label
                    )
        except asyncio.CancelledError:
            # The response is now at an unknown position: never pretend it ended cleanly.
            self._interrupted = True
            raise
        except Exception:
            await self._end()  # a failed stream releases its connection at once
            raise
        if self._ready:
            return self._ready.popleft()
        raise StopAsyncIteration

    async def _connect(self) -> None:
        self._state = _State.CONNECTING
        self._mark_open()
        self._client = self._owner.http_client()
        request = self._client.build_request(
            "POST",
            self._owner.url,
            content=self._content,
            headers={"Content-Type": "application/json"},
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._translate(exc, during="connect") from exc
        self._response = response
        if self._state is _State.CLOSED:  # aborted while connecting
            await self._close_http()
            raise StopAsyncIteration
        if response.status_code != 200:
            raise await self._http_error(response)
        kind = response.headers.get("content-type", "")
        if "text/event-stream" not in kind:
            raise ProviderProtocolError(
                f"expected an event stream, got {kind or 'no content type'!r}",
                provider=self.label,
            )
        self._state = _State.STREAMING
        self._body_iter = response.aiter_bytes()

    async def _read_some(self) -> bool:
        """Read one network chunk and decode it; False at end of body (after [DONE])."""
        assert self._body_iter is not None
        try:
            data = await self._body_iter.__anext__()
        except StopAsyncIteration:
            data = None
        except Exception as exc:
            if self._state is _State.CLOSED:  # our own aclose()/abort() cut the read short
                await self._close_http()
                return False
            if isinstance(exc, httpx.HTTPError):
                raise self._translate(exc, during="read") from exc
            raise ProviderConnectionError(
                f"stream ended before completion ({type(exc).__name__}: {exc})",
                provider=self.label,
            ) from exc
        if self._state is _State.CLOSED:
            await self._close_http()
            return False
        try:
            if data is None:
                tail = self._decoder.flush()
                if tail is not None:
                    self._feed(tail)
                if not self._assembler.done:
                    raise ProviderConnectionError(
                        "stream ended before completion (no [DONE] from the server)",
                        provider=self.label,
                    )
                await self._end()
                return False
            for event in self._decoder.feed(data):
                self._feed(event)
                if self._assembler.done:
                    await self._end()
                    return bool(self._ready)
        except WireError as exc:
            raise ProviderProtocolError(str(exc), provider=self.label) from exc
        except StreamError as exc:
            raise ProviderError(
                str(exc), provider=self.label, retryable=exc.server_side, code=exc.code
            ) from exc
        return True

    def _feed(self, event: str) -> None:
        if self._assembler.done:
            return  # nothing counts after [DONE]
        self._ready.extend(self._assembler.feed(event))

    # -- errors ---------------------------------------------------------------------------
    def _translate(self, exc: httpx.HTTPError, *, during: str) -> ProviderError:
        if isinstance(exc, httpx.UnsupportedProtocol):
            return ProviderConfigError(
                f"bad base_url {self._owner.url!r}: {exc}", provider=self.label
            )
        if isinstance(exc, httpx.TimeoutException):
            what = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "no data"
            limit = (
                self._owner.connect_timeout
                if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout | httpx.WriteTimeout)
                else self._owner.read_timeout
            )
            return ProviderTimeoutError(f"{what} within {limit:g}s", provider=self.label)
        if isinstance(exc, httpx.ConnectError):
            return ProviderConnectionError(
                f"cannot connect to {self._owner.url}: {exc}", provider=self.label
            )
        if during == "read" and isinstance(exc, httpx.TransportError):
            return ProviderConnectionError(
                f"stream ended before completion (connection lost: {exc})", provider=self.label
            )
        if isinstance(exc, httpx.TransportError):
            return ProviderConnectionError(
                f"request failed before a response: {exc}", provider=self.label
            )
        return ProviderError(f"HTTP failure: {exc}", provider=self.label, retryable=False)

    async def _http_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        detail = await self._error_detail(response)
        message = f"HTTP {status} from {self._owner.url}" + (f": {detail}" if detail else "")
        if status in (401, 403):
            return ProviderAuthError(message, provider=self.label, code=status)
        if status == 408:
            return ProviderTimeoutError(message, provider=self.label, code=status)
        retryable = status == 429 or status >= 500
        return ProviderError(message, provider=self.label, retryable=retryable, code=status)

    async def _error_detail(self, response: httpx.Response) -> str:
        """The start of the error body (bounded in size; in time by read_timeout)."""
        raw = bytearray()
        parts = response.aiter_bytes()
        try:
            async for part in parts:
                raw += part
                if len(raw) >= _ERROR_BODY_LIMIT:
                    break
        except httpx.HTTPError:
            pass
        finally:
            aclose = getattr(parts, "aclose", None)  # an async generator: close it here,
            if aclose is not None:  # not in a finalizer task at garbage collection
                await aclose()
        text = raw[:_ERROR_BODY_LIMIT].decode("utf-8", "replace").strip()
        try:
            payload = json.loads(text)
        except ValueError:
            return text[:300]
        if isinstance(payload, dict):
            error = payload.get("error", payload)
            if isinstance(error, dict) and "message" in error:
                return str(error["message"])[:300]
        return text[:300]

    # -- release --------------------------------------------------------------------------
    async def _end(self) -> None:
        """The reply is over (done or failed): release the connection now."""
        if self._state is not _State.CLOSED:
            self._state = _State.ENDED
        try:
            await self._close_http()
        finally:
            self._mark_released()

    async def _close_http(self) -> None:
        """Close the response and the client. Never waits on the peer: the socket is shut
        down first, so nothing below can block on the network."""
        self._shutdown_socket()
        body_iter, self._body_iter = self._body_iter, None
        response, self._response = self._response, None
        client, self._client = self._client, None
        aclose_body = getattr(body_iter, "aclose", None)
        if aclose_body is not None:
            try:
                await aclose_body()
            except RuntimeError:
                pass  # still running in a reader task: the shut-down socket ends it
        if response is not None:
            await response.aclose()
        if client is not None:
            await client.aclose()

    def _shutdown_socket(self) -> None:
        """Hard-stop the TCP connection (sync): a pending read returns at once."""
        response = self._response
        if response is None:
            return
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        # asyncio hands out a TransportSocket, which has shutdown() but is no socket.socket.
        # shutdown (not close) leaves the fd to its transport, which then sees EOF.
        shutdown = getattr(sock, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already disconnected

    async def _aclose_impl(self) -> None:
        self._state = _State.CLOSED
        self._ready.clear()
        await self._close_http()

    def _abort_impl(self) -> None:
        self._state = _State.CLOSED
        self._ready.clear()
        self._shutdown_socket()
